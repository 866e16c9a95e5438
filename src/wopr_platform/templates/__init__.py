"""Bot profile templates: versioned YAML profiles, bots created from them, and seeding of the standard fleet."""
