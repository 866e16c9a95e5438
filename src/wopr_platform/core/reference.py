"""Image references: parse, normalise (Docker Hub defaults) and match against the allowlist."""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(rf"^{_COMPONENT}\Z")
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"(?::[0-9]{1,5})?\Z"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}\Z", re.ASCII)
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}\Z")
# Docker's limit on a repository name, registry included, as normalised (`docker.io/library/...`): the engine
# refuses a longer one
MAX_NAME_LENGTH = 255
# name, `:` and a 128-character tag, `@sha256:` and 64 hex digits fit well within this
MAX_REFERENCE_LENGTH = 512


class InvalidReference(ValueError):
    """The text is not a valid image reference."""


def _looks_like_domain(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed image reference such as `ghcr.io/wopr-network/wopr:stable` or `busybox@sha256:...`."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse `text`, applying Docker Hub's defaults (docker.io, library/, no tag → latest)."""
        if not text or len(text) > MAX_REFERENCE_LENGTH or text != text.strip():
            raise InvalidReference("must be a non-empty image reference without surrounding spaces")
        rest, digest = text, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            if not _DIGEST_RE.match(digest):
                raise InvalidReference("digest must be sha256:<64 hex digits>")
        tag = None
        last_slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > last_slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG_RE.match(tag):
                raise InvalidReference("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
        registry, repository = cls._split_name(rest)
        if len(registry) + 1 + len(repository) > MAX_NAME_LENGTH:
            raise InvalidReference(
                f"the repository name (with its registry) must be at most {MAX_NAME_LENGTH} characters"
            )
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @staticmethod
    def _split_name(name: str) -> tuple[str, str]:
        parts = name.split("/")
        if len(parts) > 1 and _looks_like_domain(parts[0]):
            registry, path = parts[0], parts[1:]
            if not _DOMAIN_RE.match(registry):
                raise InvalidReference(f"invalid registry host {registry!r}")
        else:
            registry, path = DOCKER_HUB, parts
        if registry in ("index.docker.io", "registry-1.docker.io"):
            registry = DOCKER_HUB
        if registry == DOCKER_HUB and len(path) == 1:
            path = ["library", *path]
        for component in path:
            if not _COMPONENT_RE.match(component):
                raise InvalidReference("repository path components must be lowercase letters, digits and separators")
        return registry.lower(), "/".join(path)

    @property
    def name(self) -> str:
        """Registry and repository, without tag or digest: `docker.io/library/busybox`."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @staticmethod
    def check_allowlist_entry(entry: str) -> str:
        """Normalise one allowlist entry to a repository-name prefix (registry-wide entries end in `/`)."""
        stripped = entry.strip()
        if not stripped:
            raise InvalidReference("empty allowlist entry")
        bare = stripped.rstrip("/")
        if "/" not in bare and stripped.endswith("/") and _looks_like_domain(bare):
            if not _DOMAIN_RE.match(bare):
                raise InvalidReference(f"invalid registry host {bare!r}")
            return bare.lower() + "/"
        if "@" in bare or ":" in bare.split("/")[-1]:
            raise InvalidReference("allowlist entries name a registry or repository, not a tag or digest")
        registry, repository = ImageReference._split_name(bare)
        return f"{registry}/{repository}"


def pinned(image: str, digest: str | None) -> str:
    """What a container runs: `<name>@<digest>` once the platform knows the digest, else the reference as given."""
    if digest is None:
        return image
    return f"{ImageReference.parse(image).name}@{digest}"


def is_allowed(reference: ImageReference, allowlist: list[str]) -> bool:
    """True when the image's normalised name equals an entry or lies under it at a `/` boundary."""
    name = reference.name
    for entry in allowlist:
        prefix = ImageReference.check_allowlist_entry(entry)
        if prefix.endswith("/"):
            if name.startswith(prefix):
                return True
        elif name == prefix or name.startswith(prefix + "/"):
            return True
    return False
