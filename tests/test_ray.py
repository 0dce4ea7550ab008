"""Distributed extraction on a real local Ray cluster, started by these tests with `ray start --head`.

The cluster runs in its own process group (so a SIGKILLed driver does not take it down) with 2 CPUs
and a small fixed object store, and is stopped at the end. Ray only computes the batches; the file is
the one working file of a local run, so every result is compared bit for bit with the single-process
path on the same images: features, labels, paths, split and skipped files (also with --update, --dtype,
--compression and int8, and after a SIGKILLed driver is resumed).
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

import pytest
from conftest import add_bad_files, draw, make_dataset, run_cli
from extract_proc import assert_same_file

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


def same_as_local(got: Path, ref: Path) -> dict:
    """Bit for bit the local file's rows, with the same provenance; returns the file's record of the Ray run."""
    assert_same_file(got, ref)
    with tk.open_features(got) as g, tk.open_features(ref) as r:
        for key in ("model", "weights_sha256", "layer", "pool", "preprocess", "dataset_root", "test_size", "seed",
                    "n_images", "batch_size", "engine", "precision", "format_version"):
            assert g.attrs.get(key) == r.attrs.get(key), key
        assert g.dtype == r.dtype and "ray" not in r.attrs
        return json.loads(g.attrs["ray"]) if "ray" in g.attrs else {}


def _progress(out: Path) -> int:
    """Images the working file has committed (0 while it is not there or cannot be read yet)."""
    try:
        with tk.open_features(out) as ff:
            return ff.progress["inputs_done"] if ff.progress else 0
    except (TransferkitError, OSError):
        return 0


def test_equals_the_single_process_run_with_failing_images_inside_shards(cluster, data, reference, tmp_path):
    seen = []
    r = tk.extract(data, tmp_path / "ray.h5", batch_size=4, ray=cluster, ray_workers=2, ray_shard_size=SHARD,
                   progress=lambda done, total: seen.append((done, total)))
    info = same_as_local(r.path, reference.path)
    assert len(r.skipped) == 4 and {p.split("/")[-1] for p, _ in r.skipped} == {
        "empty.jpg", "not an image.png", "truncated.jpg", "bomb.png"}
    assert (r.n_rows, r.n_train, r.n_test) == (reference.n_rows, reference.n_train, reference.n_test)
    assert r.ray["shards"] == 10 and r.ray["workers"] == 2 and info == r.ray and info["shard_size"] == SHARD
    assert seen[0] == (0, 28) and seen[-1] == (28, 28) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ray.h5"]  # no parts, no lock, no temporary file left


def test_update_dtype_compression_and_int8_equal_the_local_run(cluster, data, tmp_path):
    """What a local run can do, a Ray run does alike: the same file, bit for bit."""
    photos = tmp_path / "photos"
    shutil.copytree(data, photos)
    first = tmp_path / "first.h5"
    tk.extract(photos, first, batch_size=4, dtype="float16", compression="gzip", ray=cluster, ray_shard_size=SHARD)
    local = tmp_path / "local.h5"
    tk.extract(photos, local, batch_size=4, dtype="float16", compression="gzip")
    same_as_local(first, local)
    with tk.open_features(first) as ff:
        assert ff.h5["features"].compression == "gzip"

    import numpy as np

    rng = np.random.default_rng(3)
    for i in range(4):  # new images, and one gone: --update extracts only the new ones, on Ray
        draw("disc", rng).save(photos / "red disc" / f"new {i}.png")
    (photos / "blue square" / "empty.jpg").unlink()
    for out, ray in ((first, cluster), (local, None)):
        r = tk.extract(photos, out, batch_size=4, update=True, ray=ray, ray_shard_size=SHARD)
        assert (r.status, r.n_processed, r.n_added, r.n_removed) == ("updated", 4, 4, 1)
    assert r.ray is None
    same_as_local(first, local)

    int8_ray, int8_local = tmp_path / "int8-ray.h5", tmp_path / "int8-local.h5"
    with pytest.warns(UserWarning):  # the drawings' int8 quality warning (cosine < 0.99), twice
        tk.extract(photos, int8_local, batch_size=4, precision="int8")
        tk.extract(photos, int8_ray, batch_size=4, precision="int8", ray=cluster, ray_shard_size=SHARD)
    same_as_local(int8_ray, int8_local)
    with tk.open_features(int8_ray) as g, tk.open_features(int8_local) as r:
        assert g.attrs["calibration"] == r.attrs["calibration"]


def test_a_killed_worker_is_restarted_and_its_shards_retried(cluster, data, reference, tmp_path):
    out = tmp_path / "ray.h5"
    outcome = {}

    def drive():
        try:
            outcome["result"] = tk.extract(data, out, batch_size=4, buffer_rows=1, ray=cluster, ray_workers=1,
                                           ray_shard_size=SHARD)
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + 240
    while not _progress(out):  # the worker is mid-run: one shard in the file, nine to go
        assert driver.is_alive() and time.monotonic() < deadline, outcome
        time.sleep(0.05)
    (name,) = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith("extract-")]
    actor = ray.get_actor(name, namespace="transferkit")
    pid = ray.get(actor.pid.options(concurrency_group="control").remote(), timeout=60)
    os.kill(pid, signal.SIGKILL)
    driver.join(300)
    assert "error" not in outcome, outcome.get("error")
    info = same_as_local(out, reference.path)
    # one worker, two processes: Ray restarted the killed actor, which finished the remaining shards
    assert info["shards"] == 10 and info["workers"] == 1 and info["worker_processes"] == 2


def test_a_killed_driver_resumes_without_redoing_committed_shards(cluster, data, reference, tmp_path):
    out = tmp_path / "ray.h5"
    args = [sys.executable, "-m", "transferkit", "extract", data, "-o", out, "--batch-size", "4", "--buffer-rows",
            "1", "--ray", cluster, "--ray-workers", "1", "--ray-shard-size", str(SHARD)]
    driver = subprocess.Popen(list(map(str, args)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while _progress(out) < 2 * SHARD:
        assert driver.poll() is None, driver.stdout.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    driver.kill()  # SIGKILL: no cleanup of any kind
    driver.wait()
    driver.stdout.close()
    done = _progress(out)
    assert 2 * SHARD <= done < 28, done  # killed mid-run
    before = out.stat().st_mtime_ns

    proc = run_cli("extract", data, "-o", out, "--batch-size", "3", "--ray", cluster, "--resume")
    assert proc.returncode == 1 and "batch_size 4, this run asks for 3; rerun with the file's --batch-size" in (
        proc.stderr)
    proc = run_cli("extract", data, "-o", out, "--batch-size", "4", "--ray", cluster)
    assert proc.returncode == 1
    assert f"incomplete feature file, {done} of 28 images done); pass --resume to finish it" in proc.stderr
    assert out.stat().st_mtime_ns == before  # the refused attempts touched nothing

    seen = []
    r = tk.extract(data, out, batch_size=4, ray=cluster, ray_workers=1, ray_shard_size=SHARD, resume=True,
                   progress=lambda d, total: seen.append(d))
    assert (r.status, r.n_processed, seen[0]) == ("resumed", 28 - done, done)
    assert 0 < r.rows_before <= done
    info = same_as_local(out, reference.path)
    assert info["shards"] == -(-(28 - done) // SHARD)  # only what the killed run had not committed
