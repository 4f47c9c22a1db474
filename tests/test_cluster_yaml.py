"""cluster.yaml is a valid Ray cluster-launcher file and keeps our security rules."""

import json
from pathlib import Path

import jsonschema
import ray.autoscaler
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_validates_against_rays_own_schema():
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(CONFIG, schema)


def test_schema_check_catches_a_broken_file():
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    broken = {**CONFIG, "available_node_types": {"gpu_worker": {"resources": {"GPU": -1}}}}
    try:
        jsonschema.validate(broken, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("the schema accepted a node type without node_config")


def test_cpu_head_and_autoscaling_gpu_workers():
    types = CONFIG["available_node_types"]
    head = types[CONFIG["head_node_type"]]
    assert head["resources"].get("CPU") == 0 and "GPU" not in head["resources"]
    workers = [t for name, t in types.items() if name != CONFIG["head_node_type"]]
    assert any(t["resources"].get("GPU", 0) >= 1 and t["min_workers"] < t["max_workers"]
               for t in workers)  # fmt: skip
    assert CONFIG["provider"]["type"] == "aws"


def test_token_auth_on_and_dashboard_on_localhost_only():
    head = " ".join(CONFIG["head_start_ray_commands"])
    worker = " ".join(CONFIG["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in worker
    assert "--dashboard-host=127.0.0.1" in head
    assert "0.0.0.0" not in head + worker


def test_installs_microsweep_pinned():
    setup = " ".join(CONFIG["setup_commands"])
    assert "-c ~/microsweep/constraints.txt" in setup and "-e ~/microsweep" in setup
    assert CONFIG["file_mounts"]["~/microsweep"] == "."
