"""Run an effdl-ros command inside an OCI container (runc or crun), for host-vs-container timing.

No image registry is reachable here, so the container's root filesystem is built from Debian
packages (`debootstrap --variant=minbase bookworm ROOTFS`) and run by an OCI runtime from Debian.
The Python interpreter, the virtual environment (PyTorch) and the checkout are bind-mounted read-only
at the same paths, so inside and outside run the very same binaries: what differs is the container
(its namespaces, its cgroup, its root filesystem's libraries). Podman was tried first: as it sets
resource limits that this sandbox may not set (no CAP_SYS_RESOURCE), it cannot start a container
here; the bundle written below carries no rlimits, so runc can.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from effdl_ros.errors import ConfigError

OUT = "/out"  # where the command inside writes (bind-mounted read-write)


def interpreter_roots() -> List[str]:
    """Folders the interpreter and the package need: the base Python, the venv, the checkout."""
    import effdl_ros

    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix),
             str(Path(effdl_ros.__file__).resolve().parents[1])}
    return sorted(r for r in roots if r not in ("/", "/usr"))


def oci_spec(default: dict, *, rootfs: str, args: Sequence[str], binds: Sequence[str], out_dir: str,
             env: Dict[str, str], cwd: str) -> dict:
    """The runtime's default spec (`runc spec`) made to run `args`: read-only root filesystem,
    read-only binds at their own paths, `out_dir` at /out, no rlimits, no terminal."""
    spec = copy.deepcopy(default)
    spec["root"] = {"path": rootfs, "readonly": True}
    process = spec.setdefault("process", {})
    process.update(args=list(args), terminal=False, cwd=cwd,
                   env=[f"{k}={v}" for k, v in sorted(env.items())])
    process.pop("rlimits", None)
    mounts = spec.setdefault("mounts", [])
    for path in binds:
        mounts.append({"destination": path, "type": "bind", "source": path, "options": ["rbind", "ro"]})
    mounts.append({"destination": OUT, "type": "bind", "source": out_dir, "options": ["rbind", "rw"]})
    mounts.append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "mode=1777", "size=1g"]})
    return spec


def run_in_container(command: Sequence[str], *, rootfs: str, out_dir: str, runtime: str = "runc",
                     timeout: Optional[float] = None) -> int:
    """`effdl-ros COMMAND...` inside a fresh container; its exit code."""
    exe = shutil.which(runtime)
    if exe is None:
        raise ConfigError(f"the OCI runtime {runtime!r} is not installed (apt-get install runc)")
    if not Path(rootfs, "bin").is_dir():
        raise ConfigError(f"{rootfs} is not a root filesystem (build one: debootstrap --variant=minbase "
                          "bookworm DIR)")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    roots = interpreter_roots()
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/tmp", "container": "oci",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PYTHONDONTWRITEBYTECODE": "1"}
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if key in os.environ:
            env[key] = os.environ[key]
    with tempfile.TemporaryDirectory(prefix="effdl_ros_oci_") as bundle:
        subprocess.run([exe, "spec", "--bundle", bundle], check=True, capture_output=True)
        default = json.loads(Path(bundle, "config.json").read_text())
        spec = oci_spec(default, rootfs=os.path.abspath(rootfs), out_dir=os.path.abspath(out_dir),
                        args=[sys.executable, "-m", "effdl_ros.cli.main", *command], binds=roots,
                        env=env, cwd="/tmp")
        Path(bundle, "config.json").write_text(json.dumps(spec, indent=1))
        name = f"effdl-ros-{os.getpid()}"
        try:
            return subprocess.run([exe, "run", "--bundle", bundle, name], timeout=timeout).returncode
        finally:
            subprocess.run([exe, "delete", "--force", name], capture_output=True)
