"""Reaching into a bot's container behind the platform's back, to see what the bot itself sees."""

from __future__ import annotations

import aiodocker


async def run_in(docker: aiodocker.Docker, container_id: str, script: str) -> str:
    """Run a shell script in the bot's container (as the engine's exec does) and return what it printed."""
    container = docker.containers.container(container_id)
    execution = await container.exec(["sh", "-c", script], stdout=True, stderr=True)
    output = b""
    async with execution.start(detach=False) as stream:
        while (message := await stream.read_out()) is not None:
            output += message.data
    return output.decode()
