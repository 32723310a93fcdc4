"""Read an offline W&B run's .wandb file back (wandb ships no reader for it).

Format (wandb 0.31, see shared/wandb-notes.md): a 7-byte header, then 32 KiB blocks of chunks
``crc32 | uint16 length | uint8 type | payload``; FULL/FIRST/MIDDLE/LAST chunk types reassemble
records, each a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    pos, pending = HEADER, b""
    while pos < len(data):
        left_in_block = BLOCK - (pos % BLOCK)
        if left_in_block < 7:  # padding at the end of a block
            pos += left_in_block
            continue
        if pos + 7 > len(data):
            break
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        payload = data[pos + 7 : pos + 7 + length]
        if len(payload) < length or zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
            break  # a torn tail (hard kill): stop at the last whole record
        pos += 7 + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            yield pending + payload
            pending = b""


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """What an offline run recorded: run info, config, history rows, summary, exit code."""

    run_id: str = ""
    name: str = ""
    group: str = ""
    project: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    exit_code: int | None = None
    preempting: bool = False  # run.mark_preempting() was called


def read_run(path: Path) -> OfflineRun:
    """Parse one run-<id>.wandb file."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a .wandb file"
    run = OfflineRun()
    for payload in _payloads(data):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.name, run.group, run.project = r.run_id, r.display_name, r.run_group, r.project
            run.tags = list(r.tags)
            for item in r.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "files":
            run.files.extend(f.path for f in record.files.files)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
        elif kind == "preempting":
            run.preempting = True
    run.config = {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in run.config.items()}
    return run


def find_runs(run_dir: Path) -> list[Path]:
    """Every offline .wandb file under ``run_dir``."""
    return sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
