"""The WOPR instance contract every bot image honours: the port it serves on and where it keeps its state."""

from __future__ import annotations

INSTANCE_PORT = 7437
DATA_MOUNT = "/data"
