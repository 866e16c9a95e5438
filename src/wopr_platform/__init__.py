"""wopr-platform: the control plane for fleets of WOPR bot instances."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wopr-platform")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
