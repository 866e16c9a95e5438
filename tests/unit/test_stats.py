"""Resource usage from two counter samples (the same arithmetic as `docker stats`)."""

from __future__ import annotations

from wopr_platform.docker.types import ContainerStats
from wopr_platform.fleet.observation.stats import Usage, usage_between

MIB = 1_048_576
SECOND = 1_000_000_000


def sample(cpu: int = 0, system: int = 0, cpus: int = 2, memory: int = 0, limit: int = 1024 * MIB) -> ContainerStats:
    return ContainerStats(
        cpu_total_ns=cpu,
        system_cpu_ns=system,
        online_cpus=cpus,
        memory_usage_bytes=memory,
        memory_limit_bytes=limit,
    )


def test_cpu_is_the_containers_share_of_all_cores() -> None:
    """1 s of container CPU while the host's 2 cores did 4 s of work in total is 50% (100% = one core)."""
    before = sample(cpu=10 * SECOND, system=100 * SECOND)
    after = sample(cpu=11 * SECOND, system=104 * SECOND)
    assert usage_between(before, after).cpu_percent == 50.0


def test_cpu_can_exceed_100_on_several_cores() -> None:
    """A container busy on all 4 cores reports 400%."""
    before = sample(cpus=4)
    after = sample(cpu=8 * SECOND, system=8 * SECOND, cpus=4)
    assert usage_between(before, after).cpu_percent == 400.0


def test_first_sample_has_no_cpu_figure() -> None:
    """Without a previous sample there is no interval, so CPU is 0, not the lifetime average."""
    assert usage_between(None, sample(cpu=50 * SECOND, system=100 * SECOND)).cpu_percent == 0.0


def test_counters_that_went_backwards_give_zero_not_negative() -> None:
    """A restarted container resets its counters: never a negative percentage."""
    before = sample(cpu=50 * SECOND, system=100 * SECOND)
    after = sample(cpu=1 * SECOND, system=101 * SECOND)
    assert usage_between(before, after).cpu_percent == 0.0


def test_no_system_time_elapsed_gives_zero_not_a_division_error() -> None:
    """Two samples in the same daemon tick must not divide by zero."""
    same = sample(cpu=5 * SECOND, system=100 * SECOND)
    assert usage_between(same, sample(cpu=6 * SECOND, system=100 * SECOND)).cpu_percent == 0.0


def test_memory_in_mib_and_percent_of_the_limit() -> None:
    """Usage and limit are reported in MiB, and their ratio in percent."""
    usage = usage_between(None, sample(memory=256 * MIB, limit=1024 * MIB))
    assert usage == Usage(cpu_percent=0.0, memory_usage_mb=256.0, memory_limit_mb=1024.0, memory_percent=25.0)


def test_no_memory_limit_gives_zero_percent() -> None:
    """A limit of 0 (unknown) gives 0%, not a division error."""
    usage = usage_between(None, sample(memory=10 * MIB, limit=0))
    assert usage.memory_percent == 0.0
    assert usage.memory_usage_mb == 10.0


def test_figures_are_rounded_to_two_decimals() -> None:
    """1/3 of a core and 1 byte over 1 MiB come out as 33.33% and 1.0 MiB."""
    before = sample(cpus=1)
    after = sample(cpu=1 * SECOND, system=3 * SECOND, cpus=1, memory=MIB + 1, limit=3 * MIB)
    usage = usage_between(before, after)
    assert usage.cpu_percent == 33.33
    assert usage.memory_usage_mb == 1.0
    assert usage.memory_percent == 33.33
