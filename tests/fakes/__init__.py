"""Fakes for faults a real component cannot produce on demand; each says in its name what it fakes."""
