"""Errors of the template domain, under the project's one error root."""

from __future__ import annotations

from wopr_platform.core.errors import NotFound, ServiceUnavailable, ValidationFailed


class TemplateNotFound(NotFound):
    code = "template_not_found"


class MissingVariables(ValidationFailed):
    """Template variables with no value in the request nor in the platform's secrets; nothing was created."""

    code = "missing_variables"

    def __init__(self, template: str, missing: list[str]) -> None:
        super().__init__(
            f"template {template} needs values for: {', '.join(missing)}",
            details={"template": template, "missing": missing},
        )
        self.missing = missing


class SecretsUnavailable(ServiceUnavailable):
    """The configured secrets file cannot be read."""

    code = "secrets_unavailable"
