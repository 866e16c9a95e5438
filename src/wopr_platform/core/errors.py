"""The project's one error root: every expected failure carries an HTTP status and a stable code."""

from __future__ import annotations

from typing import Any


class PlatformError(Exception):
    """Base of every error the platform raises on purpose; rendered as `{"error", "details"}`."""

    status: int = 500
    code: str = "internal_error"
    headers: tuple[tuple[str, str], ...] = ()  # sent with every answer of this error

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = {"code": self.code, **(details or {})}


class ValidationFailed(PlatformError):
    status = 400
    code = "validation_failed"


class Unauthorized(PlatformError):
    status = 401
    code = "unauthorized"
    headers = (("WWW-Authenticate", "Bearer"),)  # the scheme to authenticate with (RFC 7235), as the original sent


class Forbidden(PlatformError):
    """The caller is who it says, but may not take this action."""

    status = 403
    code = "forbidden"


class NotInPlan(Forbidden):
    """The tenant's plan does not include what was asked (a resource tier, a release channel)."""

    code = "not_in_plan"


class NotFound(PlatformError):
    status = 404
    code = "not_found"


class Conflict(PlatformError):
    status = 409
    code = "conflict"


class QuotaExceeded(Conflict):
    """The change would take a tenant past one of its quotas (bots, memory, CPUs); freeing some lets it pass."""

    code = "quota_exceeded"


class InsufficientCredits(PlatformError):
    """The tenant's credits do not cover what it asked for (the payment gate)."""

    status = 402
    code = "insufficient_credits"


class SpendingCapReached(PlatformError):
    """The tenant's own daily or monthly spending cap is reached: nothing more that costs is started."""

    status = 402
    code = "spending_cap_reached"


class BotCapReached(PlatformError):
    """The bot's own daily cap on what its gateway calls cost would be passed by this call."""

    status = 402
    code = "bot_cap_reached"


class PayloadTooLarge(PlatformError):
    status = 413
    code = "payload_too_large"


class UpstreamFailed(PlatformError):
    """An outside system (a registry pulling an image) failed the request."""

    status = 502
    code = "upstream_failed"


class PaymentFailed(PlatformError):
    """The payment provider refused a call (a card declined, an amount it does not accept)."""

    status = 402
    code = "payment_failed"


class ServiceUnavailable(PlatformError):
    status = 503
    code = "service_unavailable"


class PaymentsUnavailable(ServiceUnavailable):
    """The payment provider cannot be reached, or payments are not configured."""

    code = "payments_unavailable"


class MailUnavailable(ServiceUnavailable):
    """No outgoing mail is configured (SMTP_HOST), or the mail server refused or could not be reached."""

    code = "mail_unavailable"


class EngineUnavailable(ServiceUnavailable):
    """The Docker engine cannot be reached."""

    code = "engine_unavailable"


class EngineTimeout(ServiceUnavailable):
    """The Docker engine did not answer in time."""

    code = "engine_timeout"


class FirewallUnavailable(ServiceUnavailable):
    """The host firewall that keeps bots off the host's own addresses cannot be read or changed."""

    code = "firewall_unavailable"


class TenantSubnetsExhausted(ServiceUnavailable):
    """Every subnet of FLEET_TENANT_SUBNETS is taken: no new tenant network can be made until one is freed."""

    code = "tenant_subnets_exhausted"


class EngineError(PlatformError):
    """The Docker engine refused or failed an operation (e.g. an image the engine cannot start)."""

    status = 502
    code = "engine_error"


class EngineNotFound(NotFound):
    """The engine has no such object (container, volume, image)."""

    code = "engine_not_found"


class EngineConflict(Conflict):
    """The engine reports a conflict (name in use, container not in the right state)."""

    code = "engine_conflict"


class UnsafeContainerSpec(PlatformError):
    """The Docker adapter refused a container spec that would break the hardening (a platform bug, never input)."""

    code = "unsafe_container_spec"


class ImageUnavailable(UpstreamFailed):
    """The image could not be found locally nor pulled."""

    code = "image_unavailable"


class RegistryError(PlatformError):
    """A container registry refused or failed a request (details carry the image)."""

    status = 502
    code = "registry_error"


class RegistryUnavailable(RegistryError):
    """The registry cannot be reached, timed out, or answered 5xx."""

    code = "registry_unavailable"


class RegistryRateLimited(RegistryError):
    """The registry asked us to back off (429, or its rate-limit quota is spent)."""

    code = "registry_rate_limited"

    def __init__(self, message: str, *, retry_after: float | None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={**(details or {}), "retryAfter": retry_after})
        self.retry_after = retry_after


class RegistryAuthFailed(RegistryError):
    """The registry refused our credentials (or their absence) for the repository."""

    code = "registry_auth_failed"


class ManifestUnknown(RegistryError):
    """The registry has no such tag, digest or repository."""

    code = "manifest_unknown"


class ProxyUnavailable(ServiceUnavailable):
    """Caddy's admin API cannot be reached."""

    code = "proxy_unavailable"


class ProxyRejected(UpstreamFailed):
    """Caddy refused or failed a config change."""

    code = "proxy_rejected"


class GatewayKeyInvalid(Unauthorized):
    """A call to the AI gateway without a valid gateway key (unknown, revoked, rotated away, or its bot removed)."""

    code = "gateway_key_invalid"


class ModelUnknown(NotFound):
    """A call to the AI gateway names a model the platform does not offer."""

    code = "model_unknown"


class CallRateLimited(PlatformError):
    """A gateway key made more calls than its rate allows; `Retry-After` says when the next one may go."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retryAfter": retry_after})
        self.headers = (("Retry-After", str(retry_after)),)


class ProviderUnavailable(ServiceUnavailable):
    """An AI provider is cut off after failing calls in a row (or is switched off); tried again after a while."""

    code = "provider_unavailable"


class ProviderError(UpstreamFailed):
    """An AI provider failed a call (no answer, or an error of its own); nothing was charged."""

    code = "provider_error"


class ArchiveRefused(ValidationFailed):
    """A backup archive that is not restored: not one this platform sealed, altered, cut short, or holding an entry
    that could reach out of its volume (`details.reason`, and `details.entry` where one entry is the cause)."""

    code = "archive_refused"


class SpoolFailed(ServiceUnavailable):
    """A backup's spool file could not be made or written (the spool directory is full or not writable)."""

    code = "spool_failed"
