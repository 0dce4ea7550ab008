"""Distributed extraction on a real local Ray cluster, started by these tests with `ray start --head`.

The cluster runs in its own process group (so a SIGKILLed driver does not take it down) with 2 CPUs
and a small fixed object store, and is stopped at the end. Compared against the single-process path
on the same images: rows, paths, labels, split and skipped files equal, features within 1e-5.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import add_bad_files, make_dataset, run_cli

ray = pytest.importorskip("ray")
import transferkit as tk  # noqa: E402
from transferkit.errors import TransferkitError  # noqa: E402

pytestmark = pytest.mark.slow

SHARD = 3  # 24 good + 4 bad images -> 10 shards, bad files inside shards


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray head node in a subprocess; yields its address, with this test process connected."""
    # Ray 2.60 turns on token authentication for a new cluster when ~/.ray/auth_token exists (any earlier
    # local ray.init() writes one); the cluster, this process and the CLI drivers it starts must agree.
    saved_auth = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = tempfile.mkdtemp(prefix="tkray", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    port = _free_port()
    cmd = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--block",
        "--num-cpus",
        "2",
        "--num-gpus",
        "0",
        "--object-store-memory",
        str(100 * 1024 * 1024),
        "--port",
        str(port),
        "--node-ip-address",
        "127.0.0.1",
        "--include-dashboard",
        "false",
        "--dashboard-port",
        str(_free_port()),
        "--dashboard-agent-listen-port",
        str(_free_port()),
        "--disable-usage-stats",
        "--temp-dir",
        temp,
    ]
    log = open(Path(temp) / "ray-start.log", "w")
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if head.poll() is not None:
                raise RuntimeError(
                    f"ray start exited with {head.returncode}:\n{(Path(temp) / 'ray-start.log').read_text()[-3000:]}"
                )
            try:
                ray.init(address=address, logging_level="ERROR", log_to_driver=False)
                break
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield address
    finally:
        ray.shutdown()
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # leftovers in the group we created, if any
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        if saved_auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved_auth


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_dataset(tmp_path_factory.mktemp("ray") / "my data", per_class=8)
    add_bad_files(root / "blue square")
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    """The single-process extraction of the same images."""
    return tk.extract(data, tmp_path_factory.mktemp("ref") / "ref.h5", batch_size=4)


def assert_same_file(got: Path, ref: Path):
    with tk.open_features(got) as g, tk.open_features(ref) as r:
        assert g.complete
        assert g.paths == r.paths and g.label_names == r.label_names
        assert (g.labels == r.labels).all() and (g.split == r.split).all()
        assert g.skipped == r.skipped
        np.testing.assert_allclose(g.load()[0], r.load()[0], atol=1e-5, rtol=0)
        ga, ra = g.attrs, r.attrs
        for key in (
            "model",
            "weights_sha256",
            "layer",
            "pool",
            "preprocess",
            "dataset_root",
            "test_size",
            "seed",
            "n_images",
            "batch_size",
            "engine",
            "format_version",
        ):
            assert ga[key] == ra[key], key
        return json.loads(ga["ray"])


def _parts(out: Path) -> list[Path]:
    return sorted(out.with_name(out.name + ".parts").glob("part-*.h5"))


def test_equals_the_single_process_run_with_failing_images_inside_shards(cluster, data, reference, tmp_path):
    seen = []
    r = tk.extract(
        data,
        tmp_path / "ray.h5",
        batch_size=4,
        ray=cluster,
        ray_workers=2,
        ray_shard_size=SHARD,
        progress=lambda done, total: seen.append((done, total)),
    )
    info = assert_same_file(r.path, reference.path)
    assert len(r.skipped) == 4 and {p.split("/")[-1] for p, _ in r.skipped} == {
        "empty.jpg",
        "not an image.png",
        "truncated.jpg",
        "bomb.png",
    }
    assert (r.n_rows, r.n_train, r.n_test, r.n_shards, r.workers) == (
        reference.n_rows,
        reference.n_train,
        reference.n_test,
        10,
        2,
    )
    assert info["n_shards"] == 10 and info["shard_size"] == SHARD and info["runs"][0]["shards"] == 10
    assert seen[0] == (0, 28) and seen[-1] == (28, 28)
    assert not (tmp_path / "ray.h5.parts").exists()  # parts removed once the output is complete


def test_a_killed_worker_is_restarted_and_its_shards_retried(cluster, data, reference, tmp_path):
    out = tmp_path / "ray.h5"
    outcome = {}

    def drive():
        try:
            outcome["result"] = tk.extract(data, out, batch_size=4, ray=cluster, ray_workers=1, ray_shard_size=SHARD)
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + 240
    while not _parts(out):  # the worker is mid-run: one shard written, nine to go
        assert driver.is_alive() and time.monotonic() < deadline, outcome
        time.sleep(0.05)
    with h5py.File(_parts(out)[0], "r") as part:  # the part names the driver run, which names its actors
        run_id = part.attrs["run_id"]
    actor = ray.get_actor(f"extract-{run_id}-w0", namespace="transferkit")
    pid = ray.get(actor.pid.options(concurrency_group="control").remote(), timeout=60)
    os.kill(pid, signal.SIGKILL)
    driver.join(300)
    assert "error" not in outcome, outcome.get("error")
    assert len(_parts(out)) == 0
    info = assert_same_file(out, reference.path)
    # one worker, two processes: Ray restarted the killed actor, which finished the remaining shards
    assert info["runs"][0]["shards"] == 10 and info["runs"][0]["worker_processes"] == 2


def test_a_killed_driver_resumes_redoing_only_unfinished_shards(cluster, data, reference, tmp_path):
    out = tmp_path / "ray.h5"
    args = [
        sys.executable,
        "-m",
        "transferkit",
        "extract",
        data,
        "-o",
        out,
        "--batch-size",
        "4",
        "--ray",
        cluster,
        "--ray-workers",
        "1",
        "--ray-shard-size",
        str(SHARD),
    ]
    driver = subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while len(_parts(out)) < 2:
        assert driver.poll() is None, driver.stdout.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    driver.kill()  # SIGKILL: no cleanup of any kind
    driver.wait()
    driver.stdout.close()
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _parts(out)}
    assert 2 <= len(before) < 10, before  # killed mid-run
    assert not out.exists()
    killed_runs = {h5py.File(p, "r").attrs["run_id"] for p in _parts(out)}

    proc = run_cli(
        "extract", data, "-o", out, "--batch-size", "4", "--ray", cluster, "--ray-shard-size", "4", "--resume"
    )
    assert proc.returncode == 1 and "used --ray-shard-size = 3, this run asks for 4" in proc.stderr
    with pytest.raises(TransferkitError, match="pass --resume to continue it"):
        tk.extract(data, out, batch_size=4, ray=cluster, ray_shard_size=SHARD)
    # the refused attempts touched nothing
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _parts(out)} == before

    seen = []
    r = tk.extract(
        data,
        out,
        batch_size=4,
        ray=cluster,
        ray_workers=1,
        ray_shard_size=SHARD,
        resume=True,
        progress=lambda done, total: seen.append(done),
    )
    info = assert_same_file(out, reference.path)
    first, second = info["runs"]  # the killed run's parts were kept, the resumed run computed the rest
    assert (first["shards"], second["shards"]) == (len(before), 10 - len(before))
    assert {first["run_id"]} == killed_runs != {second["run_id"]}
    assert r.shards_reused == len(before) and seen[0] == SHARD * len(before)
