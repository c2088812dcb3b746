"""The committed generated code is exactly what protoc makes from the committed .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "proto" / "hiverl" / "v1"


def test_generated_code_matches_the_proto_files(tmp_path: Path) -> None:
    protos = sorted(p.relative_to(REPO).as_posix() for p in PROTO_DIR.glob("*.proto"))
    assert protos, "no .proto files found"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            ".",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            *protos,
        ],
        cwd=REPO,
        check=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2.py*"))
    committed = sorted(p.relative_to(REPO) for p in PROTO_DIR.glob("*_pb2.py*"))
    assert generated == committed, (
        "regenerate: python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. proto/hiverl/v1/*.proto"
    )
    for rel in generated:
        assert (tmp_path / rel).read_bytes() == (REPO / rel).read_bytes(), f"{rel} is stale; regenerate it"


def test_transition_round_trip() -> None:
    from proto.hiverl.v1 import transition_pb2 as pb

    t = pb.Transition(
        obs=pb.EncodedArray(dtype="float32", shape=[4], codec=pb.CODEC_RAW, data=b"\0" * 16),
        discrete_action=1,
        reward=0.5,
        n_steps=3,
        worker_id="w",
    )
    back = pb.Transition.FromString(t.SerializeToString())
    assert (
        back == t and back.WhichOneof("action") == "discrete_action" and not back.HasField("initial_priority")
    )
