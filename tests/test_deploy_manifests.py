"""The deployment files (docker/, jobs/runtime_env.yaml, README) agree with the code and the venv.

Nothing here builds an image or starts a cluster: the checks are that every file parses, that
the image is the official Ray image of the installed Ray version, that every ``python -m X`` and
``--config configs/...`` they name exists, and that the runtime environments and the cluster
launcher config pass Ray's own validation.
"""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from importlib.util import find_spec
from pathlib import Path

import pytest
import ray
import yaml
from ray.runtime_env import RuntimeEnv

from pipeline.config import load_config

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
CLUSTER = REPO / "docker" / "cluster.yaml"
RAYJOB = REPO / "docker" / "rayjob.yaml"
RUNTIME_ENV = REPO / "jobs" / "runtime_env.yaml"
README = REPO / "README.md"
MANIFESTS = [CLUSTER, RAYJOB, RUNTIME_ENV]
TEXT_FILES = [DOCKERFILE, *MANIFESTS, README]
FIRST_PARTY = {"pipeline", "actors", "jobs", "bench", "tests"}
PYTHON_M = re.compile(r"(?<![\w/.-])(?:\S*/)?python3?\s+-m\s+([A-Za-z_][\w.]*)")
CONFIG_ARG = re.compile(r"--config[= ]+(configs/[\w./-]+)")
OFFICIAL_RAY = re.compile(r"^rayproject/ray:(\d+\.\d+\.\d+)-py(\d)(\d+)-(gpu|cu\d+)$")


def _yaml_docs(path: Path) -> list:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _one_doc(path: Path) -> dict:
    docs = _yaml_docs(path)
    assert len(docs) == 1, f"{path}: expected one YAML document, got {len(docs)}"
    return docs[0]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _base_image() -> str:
    froms = [args for word, args in _dockerfile_instructions() if word == "FROM"]
    assert froms, "docker/Dockerfile has no FROM"
    words = [w for w in froms[-1].split() if not w.startswith("--")]  # drop --platform=...
    return words[0]


def _workdir() -> str:
    workdirs = [args for word, args in _dockerfile_instructions() if word == "WORKDIR"]
    assert workdirs, "docker/Dockerfile sets no WORKDIR"
    return workdirs[-1]


def _project_image() -> str:
    """The image the cluster runs: the tag of the README's `docker build`."""
    m = re.search(r"docker build -f docker/Dockerfile -t (\S+) \.", README.read_text())
    assert m, "README.md shows no `docker build -f docker/Dockerfile -t IMAGE .`"
    return m.group(1)


def _walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _containers(rayjob: dict) -> list[dict]:
    spec = rayjob["spec"]["rayClusterSpec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def _module_exists(module: str) -> bool:
    if module.split(".")[0] in FIRST_PARTY:
        path = REPO.joinpath(*module.split("."))
        return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()
    return find_spec(module) is not None


def test_every_yaml_parses():
    paths = [*MANIFESTS, *sorted((REPO / "configs").glob("*.yaml"))]
    for path in paths:
        assert _yaml_docs(path), f"{path} is empty"
    for path in sorted((REPO / "docker").glob("*.y*ml")):
        assert path in paths, f"{path} is not checked by this test"


def test_dockerfile_is_the_official_ray_gpu_image_of_the_installed_ray():
    image = _base_image()
    m = OFFICIAL_RAY.match(image)
    assert m, f"docker/Dockerfile: FROM {image} is not an official rayproject/ray GPU image"
    version, major, minor, _ = m.groups()
    assert version == ray.__version__, f"image Ray {version} != installed Ray {ray.__version__}"
    assert (int(major), int(minor)) == sys.version_info[:2], "image Python != the venv's Python"


def test_dockerfile_installs_the_project_with_the_pinned_torch():
    pins = [d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    torch_pin = next(d for d in pins if d.startswith("torch=="))
    runs = " ".join(args for word, args in _dockerfile_instructions() if word == "RUN")
    assert f"pip install --no-cache-dir {torch_pin}" in runs
    assert "pyproject.toml" in runs and "-e /home/ray/sspcm" in runs
    copies = [args for word, args in _dockerfile_instructions() if word == "COPY"]
    assert any(args.split()[-2:] == [".", _workdir()] for args in copies), "the repo is not copied to WORKDIR"


def test_dockerignore_leaves_out_local_state():
    patterns = (REPO / ".dockerignore").read_text().splitlines()
    for name in (".venv", "runs", "data", ".git"):
        assert name in patterns, f".dockerignore does not exclude {name}"


def test_every_manifest_runs_the_same_image_of_this_version():
    image = _project_image()
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert image.endswith(f":{version}"), f"{image}: tag it with the project version {version}"
    assert _one_doc(CLUSTER)["docker"]["image"] == image
    assert {c["image"] for c in _containers(_one_doc(RAYJOB))} == {image}
    for path in (DOCKERFILE, CLUSTER, RAYJOB):
        built = re.findall(r"docker build -f docker/Dockerfile -t (\S+) \.", path.read_text())
        assert set(built) <= {image}, f"{path} builds {built}, not {image}"


def test_every_python_m_entrypoint_exists():
    checked = 0
    for path in TEXT_FILES:
        for module in PYTHON_M.findall(path.read_text()):
            assert _module_exists(module), f"{path.name}: `python -m {module}` names no module"
            checked += 1
    assert checked >= 8


def test_every_config_path_exists():
    found = []
    for path in TEXT_FILES:
        for config in CONFIG_ARG.findall(path.read_text()):
            assert (REPO / config).is_file(), f"{path.name}: --config {config} does not exist"
            found.append(config)
    assert "configs/coco_1k_r50_r18.yaml" in found


def test_rayjob_entrypoint_is_a_valid_training_command():
    """The entrypoint's config and overrides load exactly as ``jobs.train`` would load them."""
    job = _one_doc(RAYJOB)
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "jobs.train"]
    assert argv[3] == "--config"
    overrides = argv[5:]
    assert all(o.startswith("--") and "=" in o for o in overrides), overrides
    cfg = load_config(REPO / argv[4], overrides)
    assert cfg.resources.runtime == "ray"
    assert cfg.train.out_dir.startswith("/mnt/data/"), "a job's relative paths die with its working dir"


def test_rayjob_has_a_head_and_a_gpu_worker_group():
    job = _one_doc(RAYJOB)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == ray.__version__
    assert spec["headGroupSpec"]["template"]["spec"]["containers"]
    gpus = [
        int(c["resources"]["limits"].get("nvidia.com/gpu", 0))
        for g in spec["workerGroupSpecs"]
        for c in g["template"]["spec"]["containers"]
    ]
    assert max(gpus) >= 3, "SSPCM's three networks want a GPU each (nets_per_gpu=1)"


def test_rayjob_runtime_env_is_valid_and_uses_the_image_copy_of_the_repo():
    env = yaml.safe_load(_one_doc(RAYJOB)["spec"]["runtimeEnvYAML"])
    assert env["working_dir"] == _workdir()
    RuntimeEnv(**{**env, "working_dir": str(REPO)})  # the image's copy is this repository


def test_runtime_env_yaml_builds_a_ray_runtime_env():
    env = _one_doc(RUNTIME_ENV)
    runtime_env = RuntimeEnv(**env)
    assert all(isinstance(v, str) for v in runtime_env["env_vars"].values())
    # the matcher Ray applies to the working directory when it packs it for upload
    from ray._private.runtime_env.packaging import _get_excludes

    excluded = _get_excludes(REPO, env["excludes"])
    for path in (".venv", ".venv/lib/x.py", "data", "data/coco/a.jpg", "runs/demo/ckpt", ".git/HEAD"):
        assert excluded(REPO / path), f"runtime_env.yaml uploads {path}"
    for path in (
        "jobs/train.py",
        "pipeline/store/checkpoints.py",
        "configs/demo.yaml",
        "pipeline/data/coco.py",
    ):
        assert not excluded(REPO / path), f"runtime_env.yaml leaves out {path}"


def _auth_modes() -> dict[str, set[str]]:
    """Every RAY_AUTH_MODE value set in the deployment files (comments aside), per file."""
    modes: dict[str, set[str]] = {}
    for path in (DOCKERFILE, *MANIFESTS):
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        found = set(re.findall(r"RAY_AUTH_MODE\s*[=:]\s*[\"']?(\w+)", code))
        if path.suffix == ".yaml":
            for doc in _yaml_docs(path):
                for node in _walk(doc):
                    if isinstance(node, dict) and node.get("name") == "RAY_AUTH_MODE":
                        found.add(str(node["value"]))
        if found:
            modes[path.name] = found
    return modes


def test_ray_auth_mode_is_the_same_everywhere():
    modes = _auth_modes()
    assert {"cluster.yaml", "rayjob.yaml", "runtime_env.yaml"} <= set(modes), modes
    values = set().union(*modes.values())
    assert values == {_one_doc(RUNTIME_ENV)["env_vars"]["RAY_AUTH_MODE"]}, modes


def test_cluster_launcher_config_passes_ray_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _one_doc(CLUSTER)
    validate_config(config)
    validate_config(prepare_config(config))
    # the image holds everything: the launcher's default setup would install another Ray
    assert config["setup_commands"] == [] and config["worker_setup_commands"] == []
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert any("ray start --address" in c for c in config["worker_start_ray_commands"])
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert any(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in workers), "no GPU worker"


@pytest.mark.parametrize("section", ["Running on a Ray cluster"])
def test_readme_documents_cluster_use(section):
    text = README.read_text()
    assert f"## {section}" in text
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    for needle in (
        "ray start --head",
        "RAY_AUTH_MODE",
        "ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml",
        "python -m jobs.train",
        "python -m jobs.evaluate",
        "python -m jobs.export_pseudo_labels --run RUN_DIR --images",
        "docker build",
        "ray up docker/cluster.yaml",
        "kubectl apply -f docker/rayjob.yaml",
        "nets_per_gpu",
        "checkpoint_uri",
    ):
        assert needle in body, f"README section {section!r} does not mention {needle!r}"
