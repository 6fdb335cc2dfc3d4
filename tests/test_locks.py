"""Drift checks: every requirement of setup.cfg is pinned in the lock of its profile, inside
its range, and both profiles share one version of every package they have in common.

A failure here means setup.cfg changed without re-locking: run `make lock`.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# The extras each profile installs (the Makefile's CPU_EXTRAS; gpu is --all-extras).
PROFILES = {"cpu": ("density", "rl", "dev"), "gpu": ("density", "rl", "gpu", "dev")}
# The platform both locks are compiled for (the Makefile's LOCK_TARGET).
LOCK_ENVIRONMENT = {**default_environment(), "sys_platform": "linux", "platform_system": "Linux",
                    "platform_machine": "x86_64", "python_version": "3.11",
                    "python_full_version": "3.11.0", "implementation_name": "cpython"}
HINT = "setup.cfg and the lock disagree: run `make lock` (then make install, make test)"


def requirements(setup_cfg: str, extras: tuple[str, ...]) -> list[Requirement]:
    """install_requires plus the given extras of a setup.cfg text, as parsed requirements."""
    config = configparser.ConfigParser()
    config.read_string(setup_cfg)
    lines = config["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += config["options.extras_require"][extra].splitlines()
    return [Requirement(line) for line in (raw.split("#")[0].strip() for raw in lines) if line]


def pins(lock_text: str) -> dict[str, str]:
    """name -> version of every `name==version` line of a compiled lock."""
    pinned = {}
    for line in lock_text.splitlines():
        if "==" in line and not line.startswith((" ", "#", "-")):
            name, version = line.split(";")[0].strip().split("==")
            pinned[canonicalize_name(name.split("[")[0])] = version
    return pinned


def drift(setup_cfg: str, lock_text: str, extras: tuple[str, ...], lock_name: str) -> list[str]:
    """Every way the lock fails setup.cfg: a requirement not pinned, or pinned out of range."""
    pinned = pins(lock_text)
    problems = []
    for requirement in requirements(setup_cfg, extras):
        if requirement.marker and not requirement.marker.evaluate(LOCK_ENVIRONMENT):
            continue
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            problems.append(f"{requirement} is in setup.cfg but not in {lock_name}")
        elif not requirement.specifier.contains(pinned[name], prereleases=True):
            problems.append(f"{lock_name} pins {name}=={pinned[name]}, outside setup.cfg's "
                            f"{requirement}")
    return problems


def read(path: Path) -> str:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: {HINT}")
    return path.read_text()


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_lock_satisfies_setup_cfg(profile: str) -> None:
    lock_name = f"locks/{profile}.txt"
    problems = drift(read(ROOT / "setup.cfg"), read(ROOT / lock_name), PROFILES[profile],
                     lock_name)
    assert not problems, HINT + ":\n  " + "\n  ".join(problems)


def test_profiles_share_one_version_of_each_package() -> None:
    """The CPU tests must exercise the torch/transformers/... that GPU nodes run."""
    cpu, gpu = pins(read(ROOT / "locks/cpu.txt")), pins(read(ROOT / "locks/gpu.txt"))
    differ = {name: (cpu[name], gpu[name]) for name in cpu.keys() & gpu.keys()
              if cpu[name] != gpu[name]}
    assert not differ, f"cpu and gpu locks pin different versions {differ}: {HINT}"
    for name in ("torch", "torchvision", "transformers", "lmms-eval", "trl", "filelock"):
        assert name in cpu, f"locks/cpu.txt pins no {name}: {HINT}"


def test_gpu_lock_pins_what_vllm_needs() -> None:
    """vllm, trl[vllm] and deepspeed resolved together with the shared torch line."""
    gpu = pins(read(ROOT / "locks/gpu.txt"))
    for name in ("vllm", "trl", "deepspeed", "torch", "torchvision"):
        assert name in gpu, f"locks/gpu.txt pins no {name}: {HINT}"


def test_lmms_eval_gets_a_filelock_it_can_import() -> None:
    """lmms-eval 0.7.3 imports filelock._api, which filelock 4.3 removed."""
    import filelock
    import lmms_eval  # noqa: F401

    assert hasattr(filelock, "_api"), f"filelock {filelock.__version__} has no _api: {HINT}"


def test_an_edited_range_is_caught_with_the_make_lock_hint() -> None:
    """Editing a range in setup.cfg without re-locking fails the check, naming the fix."""
    setup_cfg = read(ROOT / "setup.cfg")
    lock_text = read(ROOT / "locks/cpu.txt")
    assert "filelock>=3.12,<4.3" in setup_cfg
    edited = setup_cfg.replace("filelock>=3.12,<4.3", "filelock>=4.3")
    problems = drift(edited, lock_text, PROFILES["cpu"], "locks/cpu.txt")
    assert problems == [f"locks/cpu.txt pins filelock=={pins(lock_text)['filelock']}, "
                        "outside setup.cfg's filelock>=4.3"]
    added = setup_cfg.replace("    tqdm>=4.66\n", "    tqdm>=4.66\n    not-a-locked-package>=1\n")
    assert drift(added, lock_text, PROFILES["cpu"], "locks/cpu.txt") == [
        "not-a-locked-package>=1 is in setup.cfg but not in locks/cpu.txt"]
