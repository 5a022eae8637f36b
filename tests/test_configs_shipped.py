"""Every YAML in cluster/configs/: campaigns validate; cluster configs fit what `ray up` and KubeRay need."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import yaml

import cluster
from cluster.config import load_config

CONFIGS = Path(cluster.__file__).parent / "configs"
RAY_UP = "ray-cluster-gpu.yaml"
KUBERAY = "kuberay-raycluster.yaml"
# every other YAML shipped here is a campaign config
CAMPAIGNS = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name not in (RAY_UP, KUBERAY))


def test_the_documented_configs_are_shipped():
    names = {p.name for p in CONFIGS.glob("*.yaml")}
    assert {"digits-cmaes.yaml", "cifar10-resnet-gpu.yaml", RAY_UP, KUBERAY} <= names
    readme = (CONFIGS / "README.md").read_text()
    assert all(f"`{n}`" in readme for n in ("digits-cmaes.yaml", "cifar10-resnet-gpu.yaml", RAY_UP, KUBERAY))


def _fake_cifar10(d: Path) -> None:
    """CIFAR-10's python batches in their published form (pickle protocol 2), two images each."""
    import pickle

    import numpy as np

    (d / "cifar-10-batches-py").mkdir(parents=True)
    for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
        (d / "cifar-10-batches-py" / n).write_bytes(pickle.dumps(batch, protocol=2))


def _load_here(path: Path, tmp_path: Path):
    """load_config with every check; a config whose data lives on the cluster's nodes
    (``trial.data_dir``) is read with that folder replaced by a local one holding the files."""
    raw = yaml.safe_load(path.read_text())
    if raw.get("trial", {}).get("data_dir"):
        assert raw["trial"]["dataset"] == "cifar10"
        _fake_cifar10(tmp_path / "data")
        raw["trial"]["data_dir"] = str(tmp_path / "data")
        path = tmp_path / path.name
        path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_campaign_configs_validate_and_their_bounds_are_valid_hyperparameters(name, tmp_path):
    import trials

    cfg = _load_here(CONFIGS / name, tmp_path)  # parse_config with the objective imported and the trial spec checked
    spec = trials.TrialSpec.from_dict(cfg.trial)
    for p in cfg.space.params:
        hp = trials.HPARAMS[p.name]
        # both ends (every choice of a categorical) are values the trial accepts
        for v in p.choices if p.is_categorical else (p.lower, p.upper):
            hp.check(v)
    assert cfg.budget.max_trials % cfg.strategy.popsize == 0  # whole generations
    assert spec.seed is not None and cfg.strategy.seed is not None


def test_digits_config_is_the_issue_6_campaign():
    cfg = load_config(CONFIGS / "digits-cmaes.yaml")
    sp = {p.name: p for p in cfg.space.params}
    assert list(sp) == ["lr", "weight_decay", "T_0"]
    assert sp["lr"].scale == "log10" and math.isclose(math.log10(sp["lr"].lower), -4.5)
    assert math.isclose(math.log10(sp["lr"].upper), -1.0)
    wd = sp["weight_decay"]
    assert wd.scale == "log10" and (wd.lower, wd.upper) == (1e-6, 0.1)
    assert sp["T_0"].type == "int" and (sp["T_0"].lower, sp["T_0"].upper) == (1, 20)
    assert (cfg.trial["dataset"], cfg.trial["optimizer"], cfg.trial["model"]) == ("digits", "adamw", "cnn")
    assert cfg.strategy.name == "cmaes" and cfg.strategy.restarts is None
    # a local Ray instance with every CPU, one CPU per trial, no GPU
    assert cfg.ray.address is None and cfg.ray.num_cpus is None
    assert cfg.resources.num_cpus == 1 and cfg.resources.num_gpus == 0
    assert cfg.strategy.popsize % 2 == 0  # both CPUs of a 2-core machine stay busy to the generation's end


def test_gpu_config_packs_four_trials_per_gpu_from_a_data_dir():
    from cluster.config import ConfigError

    if not Path("/home/ray/data").is_dir():  # the folder exists on the cluster's nodes, not here
        with pytest.raises(ConfigError, match="cifar10") as exc:
            load_config(CONFIGS / "cifar10-resnet-gpu.yaml")
        assert exc.value.path == "trial.data_dir"
    cfg = load_config(CONFIGS / "cifar10-resnet-gpu.yaml", check_data=False)
    assert cfg.resources.num_gpus == 0.25 and cfg.trial["dataset"] == "cifar10"
    assert cfg.trial["data_dir"] and cfg.trial["device"] == "cuda"
    assert cfg.strategy.popsize % 4 == 0
    assert "--address auto" in (CONFIGS / "cifar10-resnet-gpu.yaml").read_text()


def test_ray_up_config_matches_rays_own_schema():
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    c = yaml.safe_load((CONFIGS / RAY_UP).read_text())
    jsonschema.validate(c, schema)  # the schema `ray up` validates against (additionalProperties: false)
    types = c["available_node_types"]
    assert c["head_node_type"] in types
    workers = {k: v for k, v in types.items() if k != c["head_node_type"]}
    assert workers and sum(v["max_workers"] for v in workers.values()) <= c["max_workers"]
    assert all(v["node_config"]["InstanceType"][0] in "gp" for v in workers.values())  # AWS GPU families
    assert types[c["head_node_type"]]["resources"].get("CPU") == 0  # no trial on the driver's node
    image = c["docker"]["image"]
    assert image.startswith(f"rayproject/ray:{ray.__version__}-") and "gpu" in image
    setup = " ".join(c["setup_commands"])
    assert "pip install" in setup and "/home/ray/esopt" in setup and "/home/ray/esopt" in c["file_mounts"]
    data_dir = load_config(CONFIGS / "cifar10-resnet-gpu.yaml", check_data=False).trial["data_dir"]
    assert f"{data_dir}/cifar-10-batches-py" in setup
    assert any("ray start --head" in cmd for cmd in c["head_start_ray_commands"])
    assert any("$RAY_HEAD_IP" in cmd for cmd in c["worker_start_ray_commands"])


def _pod_volumes_resolve(pod_spec: dict, claims: set[str]) -> None:
    names = {v["name"] for v in pod_spec.get("volumes", [])}
    for ctr in pod_spec["containers"]:
        for m in ctr.get("volumeMounts", []):
            assert m["name"] in names, f"volumeMount {m['name']} has no volume"
    for v in pod_spec.get("volumes", []):
        if "persistentVolumeClaim" in v:
            assert v["persistentVolumeClaim"]["claimName"] in claims


def test_kuberay_manifest_has_what_the_operator_needs():
    import ray

    docs = list(yaml.safe_load_all((CONFIGS / KUBERAY).read_text()))
    rc = [d for d in docs if d["kind"] == "RayCluster"]
    assert len(rc) == 1
    rc = rc[0]
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert rc["apiVersion"] == "ray.io/v1" and rc["metadata"]["name"]
    spec = rc["spec"]
    assert spec["rayVersion"] == ray.__version__
    head = spec["headGroupSpec"]
    # KubeRay passes rayStartParams to `ray start` and requires string values
    assert all(isinstance(v, str) for v in head["rayStartParams"].values())
    assert head["rayStartParams"]["num-cpus"] == "0"
    hpod = head["template"]["spec"]
    assert hpod["containers"][0]["name"] and hpod["containers"][0]["image"]
    assert {p["containerPort"] for p in hpod["containers"][0]["ports"]} >= {6379, 8265, 10001}
    _pod_volumes_resolve(hpod, claims)
    assert any(m["mountPath"] == "/runs" for m in hpod["containers"][0]["volumeMounts"])
    data_dir = load_config(CONFIGS / "cifar10-resnet-gpu.yaml", check_data=False).trial["data_dir"]
    for g in spec["workerGroupSpecs"]:
        assert g["groupName"] and all(isinstance(v, str) for v in g["rayStartParams"].values())
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        wpod = g["template"]["spec"]
        _pod_volumes_resolve(wpod, claims)
        ctr = wpod["containers"][0]
        assert ctr["image"] == hpod["containers"][0]["image"]
        assert int(ctr["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        mounts = {os.path.normpath(m["mountPath"]) for m in ctr["volumeMounts"]}
        assert os.path.normpath(data_dir) in mounts
