"""Image references: parsing, Docker Hub normalisation and the allowlist match."""

from __future__ import annotations

import pytest

from wopr_platform.core.reference import ImageReference, InvalidReference, is_allowed

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
        ("user/repo", "docker.io", "user/repo", "latest", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", None),
        ("registry-1.docker.io/user/repo:v1", "docker.io", "user/repo", "v1", None),
        ("ghcr.io/wopr-network/wopr:stable", "ghcr.io", "wopr-network/wopr", "stable", None),
        ("GHCR.IO/wopr-network/wopr", "ghcr.io", "wopr-network/wopr", "latest", None),
        ("localhost/wopr-stub", "localhost", "wopr-stub", "latest", None),
        ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", None),
        ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest", None),
        (f"busybox@{DIGEST}", "docker.io", "library/busybox", None, DIGEST),
        (f"ghcr.io/a/b:1@{DIGEST}", "ghcr.io", "a/b", "1", DIGEST),
        ("a__b/c-d.e_f--g", "docker.io", "a__b/c-d.e_f--g", "latest", None),
        ("x:" + "t" * 128, "docker.io", "library/x", "t" * 128, None),
        ("localhost/" + "n" * 245, "localhost", "n" * 245, "latest", None),  # a name of 255, Docker's longest
    ],
)
def test_parse_normalises_like_docker(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    """Docker Hub defaults apply (docker.io, library/, latest) and registry hosts are case-folded."""
    assert ImageReference.parse(text) == ImageReference(registry, repository, tag, digest)


def test_str_is_the_fully_qualified_reference() -> None:
    """str() spells out registry, repository, tag and digest, so it names the same image."""
    assert str(ImageReference.parse("busybox")) == "docker.io/library/busybox:latest"
    assert str(ImageReference.parse(f"ghcr.io/a/b@{DIGEST}")) == f"ghcr.io/a/b@{DIGEST}"
    assert ImageReference.parse("busybox").name == "docker.io/library/busybox"
    for text in ("busybox:1", "localhost:5000/a/b:t", f"ghcr.io/a/b:1@{DIGEST}"):
        reference = ImageReference.parse(text)
        assert ImageReference.parse(str(reference)) == reference


@pytest.mark.parametrize(
    "text",
    [
        "",
        " busybox",
        "busybox ",
        "a b",
        "UPPER/x",
        "Busybox",
        "x:",
        ":tag",
        "x:bad tag",
        "x:-tag",
        "x:" + "t" * 129,
        "x:lätest",
        "x@sha256:abc",
        "x@md5:" + "a" * 32,
        f"x@{DIGEST.upper()}",
        "x/",
        "/x",
        "x//y",
        "a..b",
        "-x",
        "x-",
        "localhost/x\n:tag",
        "localhost/x:tag\n",
        f"x@{DIGEST}\n",
        "bad_host.io:port/x",
        "-bad.io/x",
        "x" * 513,
        "localhost/" + "n" * 246,  # a repository name over Docker's 255 characters
        "localhost/" + "n" * 246 + f":t@{DIGEST}",
        "n" * 240,  # 258 once normalised to docker.io/library/...
    ],
    ids=repr,
)
def test_parse_refuses_what_docker_would_refuse(text: str) -> None:
    """Anything outside Docker's reference grammar (ASCII only, no whitespace anywhere) is InvalidReference."""
    with pytest.raises(InvalidReference):
        ImageReference.parse(text)


ALLOWLIST = ["ghcr.io/wopr-network/", "localhost/wopr-stub", "busybox", "localhost:5000/"]


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/wopr-network/wopr",
        "ghcr.io/wopr-network/wopr:stable",
        f"ghcr.io/wopr-network/deep/path@{DIGEST}",
        "GHCR.IO/wopr-network/wopr",
        "localhost/wopr-stub",
        "localhost/wopr-stub:latest",
        "localhost/wopr-stub/variant",
        "busybox",
        "busybox:1.36",
        "docker.io/library/busybox",
        "index.docker.io/library/busybox:latest",
        "localhost:5000/anything/at/all",
    ],
)
def test_allowlist_admits_images_under_an_entry(image: str) -> None:
    """An image is allowed when its normalised name equals an entry or lies below it at a '/' boundary."""
    assert is_allowed(ImageReference.parse(image), ALLOWLIST)


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/wopr-network.evil/x",
        "ghcr.io/wopr-networkx/wopr",
        "ghcr.io/other/wopr",
        "evil.io/ghcr.io/wopr-network/wopr",
        "ghcr.io.evil.io/wopr-network/wopr",
        "localhost/wopr-stubby",
        "localhost/wopr",
        "localhost5000/wopr-stub",
        "localhost:50001/a",
        "localhost:5001/wopr-stub",
        "busybox2",
        "evil/busybox",
        "docker.io/evil/busybox",
        "ghcr.io/library/busybox",
    ],
)
def test_allowlist_refuses_look_alikes(image: str) -> None:
    """Shared prefixes that do not end at a '/' boundary, other registries and other Hub users are refused."""
    assert not is_allowed(ImageReference.parse(image), ALLOWLIST)


def test_an_empty_allowlist_allows_nothing() -> None:
    """No entries, no images."""
    assert not is_allowed(ImageReference.parse("ghcr.io/wopr-network/wopr"), [])


@pytest.mark.parametrize(
    ("entry", "normalised"),
    [
        ("ghcr.io/wopr-network/", "ghcr.io/wopr-network"),
        ("ghcr.io/", "ghcr.io/"),
        ("GHCR.IO/", "ghcr.io/"),
        ("localhost:5000/", "localhost:5000/"),
        ("busybox", "docker.io/library/busybox"),
        ("user/repo", "docker.io/user/repo"),
        (" localhost/wopr-stub ", "localhost/wopr-stub"),
    ],
)
def test_allowlist_entries_are_normalised(entry: str, normalised: str) -> None:
    """Entries get the same Docker Hub defaults as images; a bare registry with '/' covers the whole registry."""
    assert ImageReference.check_allowlist_entry(entry) == normalised


@pytest.mark.parametrize("entry", ["", "  ", "busybox:latest", f"busybox@{DIGEST}", "UPPER/x", "a b/c", "-bad.io/"])
def test_invalid_allowlist_entries_are_refused(entry: str) -> None:
    """An entry naming a tag or digest, or not a valid name at all, is InvalidReference."""
    with pytest.raises(InvalidReference):
        ImageReference.check_allowlist_entry(entry)
