"""Image removal through the real engine (docker/engine.py): the bots an update moves off an image at the same time
all ask the engine to remove it; one removes it, and the others are told it is gone, not a failure."""

from __future__ import annotations

import asyncio
import uuid

import aiodocker
import pytest

from tests.conftest import STUB_IMAGE
from wopr_platform.core.networks import SubnetPool
from wopr_platform.docker.engine import DockerEngine

pytestmark = pytest.mark.slow


async def test_removals_of_one_image_racing_each_other_are_not_failures(
    stub_image: str, docker: aiodocker.Docker
) -> None:
    engine = DockerEngine(
        "unix:///var/run/docker.sock",
        timeout=30,
        platform_id="img-" + uuid.uuid4().hex[:8],
        subnets=SubnetPool.parse(["10.200.0.0/14"], 27),
    )
    try:
        for _ in range(3):
            # an image of its own (a commit of a stopped container), so no other test's container holds it
            container = await docker.containers.create({"Image": STUB_IMAGE, "Cmd": ["true"]})
            made = await docker._query_json(
                "commit",
                method="POST",
                params={"container": container.id, "repo": "wopr-test-image-race", "tag": uuid.uuid4().hex[:8]},
                data={},
            )
            await container.delete(force=True)
            removed = await asyncio.gather(*(engine.remove_image(made["Id"]) for _ in range(3)))
            assert removed.count(True) <= 1
            with pytest.raises(aiodocker.DockerError) as gone:
                await docker.images.inspect(made["Id"])
            assert gone.value.status == 404
    finally:
        await engine.close()
