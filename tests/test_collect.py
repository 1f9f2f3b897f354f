import subprocess
import sys

import numpy as np
import pytest

from il_toolkit.envs import make_env
from il_toolkit.experts import make_expert
from il_toolkit.policies import FunctionPolicy
from il_toolkit.train.datasets import collect as collect_module
from il_toolkit.train.datasets.collect import collect_dataset
from il_toolkit.train.datasets.minari_io import (
    DatasetBusyError,
    DatasetError,
    DatasetExistsError,
    dataset_metadata,
    load_demonstrations,
    open_dataset,
)


def _seeds(dataset_id):
    return [int(s) for s in dataset_metadata(open_dataset(dataset_id))["il_toolkit_seeds"]]


def _interrupted_at_rollout(n: int):
    """A stand-in for the collector's rollout that is interrupted (Ctrl-C) at the n-th episode."""
    original = collect_module._rollout
    calls = []

    def rollout(policy, env, seed):
        calls.append(seed)
        if len(calls) == n:
            raise KeyboardInterrupt
        return original(policy, env, seed)

    return rollout


def test_interrupted_collection_keeps_finished_episodes_and_resumes(monkeypatch):
    monkeypatch.setattr(collect_module, "_rollout", _interrupted_at_rollout(4))
    with pytest.raises(KeyboardInterrupt):
        collect_dataset("CartPole-v1", "collect/resume-v0", 6, seed=100, progress=False)
    with pytest.raises(DatasetError, match="incomplete.*rerun the same collect command"):
        load_demonstrations("collect/resume-v0")  # not for training unless asked
    assert len(load_demonstrations("collect/resume-v0", allow_incomplete=True)) == 3  # every finished episode is readable
    assert dataset_metadata(open_dataset("collect/resume-v0"))["il_toolkit_complete"] is False
    monkeypatch.undo()
    report = collect_dataset("CartPole-v1", "collect/resume-v0", 6, seed=100, progress=False)
    assert report.resumed_from == 3 and report.n_episodes == 6
    assert _seeds("collect/resume-v0") == [100, 101, 102, 103, 104, 105]
    with pytest.raises(DatasetExistsError, match="--append to add episodes, --overwrite to replace it"):
        collect_dataset("CartPole-v1", "collect/resume-v0", 6, seed=100, progress=False)


def test_append_adds_new_seeds():
    collect_dataset("CartPole-v1", "collect/append-v0", 2, seed=0, progress=False)
    collect_dataset("CartPole-v1", "collect/append-v0", 2, seed=0, append=True, progress=False)
    assert _seeds("collect/append-v0") == [0, 1, 2, 3]


def test_resuming_with_another_expert_or_env_is_refused(monkeypatch):
    collect_dataset("CartPole-v1", "collect/source-v0", 1, progress=False)
    with pytest.raises(DatasetError, match="was collected from env il_toolkit/CartPole-v1"):
        collect_dataset("il_toolkit/CartPoleFixedHorizon-v1", "collect/source-v0", 1, append=True, progress=False)


def test_failing_episodes_are_dropped_and_reported():
    env = make_env("CartPole-v1")

    def explode_on_seed_2(state):
        if explode_on_seed_2.seed == 2:
            raise FloatingPointError("simulated physics blow-up")
        return 0

    class SeedAware(FunctionPolicy):
        def reset(self):
            explode_on_seed_2.seed = self.next_seed
            self.next_seed += 1

    policy = SeedAware(explode_on_seed_2, env.observation_space, env.action_space)
    policy.next_seed = 0
    report = collect_dataset("CartPole-v1", "collect/errors-v0", 4, expert=policy, progress=False)
    assert report.n_episodes == 4 and list(report.dropped) == [2]
    assert "FloatingPointError: simulated physics blow-up" in report.dropped[2]
    assert _seeds("collect/errors-v0") == [0, 1, 3, 4]


def test_only_successful_and_giving_up():
    env = make_env("CartPole-v1")
    left = FunctionPolicy(lambda s: 0, env.observation_space, env.action_space)  # never succeeds
    with pytest.raises(DatasetError, match="only 0 of 2 episodes could be kept after 18 attempts"):
        collect_dataset("CartPole-v1", "collect/never-v0", 2, expert=left, only_successful=True, progress=False)
    report = collect_dataset("CartPole-v1", "collect/always-v0", 3, only_successful=True, progress=False)
    assert report.n_episodes == 3 and not report.dropped


def test_top_percentile_keeps_the_best_returns():
    env = make_env("CartPole-v1")
    by_angle = FunctionPolicy(lambda s: int(s[2] > 0), env.observation_space, env.action_space)  # returns vary by seed
    collect_dataset("CartPole-v1", "collect/all-v0", 10, expert=by_angle, progress=False)
    report = collect_dataset("CartPole-v1", "collect/top-v0", 10, expert=by_angle, top_percentile=70, progress=False)
    returns = {s: float(t.rews.sum()) for s, t in zip(_seeds("collect/all-v0"), load_demonstrations("collect/all-v0"))}
    threshold = np.percentile(list(returns.values()), 70)
    expected = [s for s, r in returns.items() if r >= threshold]
    assert _seeds("collect/top-v0") == expected == sorted(set(returns) - set(report.dropped))
    assert [float(t.rews.sum()) for t in load_demonstrations("collect/top-v0")] == [returns[s] for s in expected]


def test_two_workers_write_the_same_episodes_as_one():
    collect_dataset("CartPole-v1", "collect/one-v0", 4, seed=50, progress=False)
    collect_dataset("CartPole-v1", "collect/two-v0", 4, seed=50, num_envs=2, progress=False)
    one, two = load_demonstrations("collect/one-v0"), load_demonstrations("collect/two-v0")
    assert _seeds("collect/two-v0") == [50, 51, 52, 53]
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.acts, b.acts)


def test_pixel_observations_are_stored_losslessly():
    collect_dataset("PushT-v0", "collect/pixels-v0", 1, env_kwargs={"obs_type": "pixels"}, progress=False)
    stored = load_demonstrations("collect/pixels-v0")[0].obs
    env = make_env("PushT-v0", obs_type="pixels")
    first, _ = env.reset(seed=0)
    np.testing.assert_array_equal(stored[0], first)


def test_overwrite_replaces_a_corrupt_dataset():
    from il_toolkit.train.datasets.minari_io import dataset_path

    collect_dataset("CartPole-v1", "collect/corrupt-v0", 1, progress=False)
    data = dataset_path("collect/corrupt-v0") / "data"
    (data / "metadata.json").write_text("{not json")
    (data / "il_toolkit_metadata.json").unlink()  # no complete copy to recover from (another tool wrote it)
    with pytest.raises(DatasetError, match="corrupt or incomplete.*collect it again with --overwrite"):
        collect_dataset("CartPole-v1", "collect/corrupt-v0", 1, progress=False)
    report = collect_dataset("CartPole-v1", "collect/corrupt-v0", 2, overwrite=True, progress=False)
    assert report.n_episodes == 2 and _seeds("collect/corrupt-v0") == [0, 1]


def test_resuming_a_run_killed_after_its_last_episode_adds_nothing(monkeypatch):
    from il_toolkit.train.datasets import minari_io

    monkeypatch.setattr(minari_io, "finalize", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        collect_dataset("CartPole-v1", "collect/last-v0", 2, progress=False)
    monkeypatch.undo()
    report = collect_dataset("CartPole-v1", "collect/last-v0", 2, progress=False)
    assert report.n_episodes == 2 and _seeds("collect/last-v0") == [0, 1]


def test_a_kill_while_minari_rewrites_metadata_loses_nothing_the_rerun_recovers(monkeypatch, capsys):
    """Minari rewrites data/metadata.json in place: a kill there leaves it empty. The rerun restores
    the copy of the last complete write, drops the episode whose write never finished, and goes on."""
    import h5py

    from il_toolkit.train.datasets import minari_io

    monkeypatch.setattr(minari_io, "finalize", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        collect_dataset("CartPole-v1", "collect/killed-meta-v0", 3, progress=False)
    monkeypatch.undo()
    data = minari_io.dataset_path("collect/killed-meta-v0") / "data"
    with h5py.File(data / "main_data.hdf5", "a") as file:  # a 4th episode stored, its metadata write cut
        file.copy("episode_2", "episode_3")
    (data / "metadata.json").write_text("")
    with pytest.raises(DatasetError, match="rerun the same collect command, which recovers"):
        load_demonstrations("collect/killed-meta-v0")
    from il_toolkit.cli import main

    assert main(["datasets"]) == 0
    assert "collect/killed-meta-v0: unreadable (its metadata is damaged: rerun the collect" in capsys.readouterr().out
    report = collect_dataset("CartPole-v1", "collect/killed-meta-v0", 3, progress=False)
    assert report.n_episodes == 3 and report.resumed_from == 3
    assert _seeds("collect/killed-meta-v0") == [0, 1, 2] and len(load_demonstrations("collect/killed-meta-v0")) == 3


def _hold_in_another_process(module: str, context: str) -> subprocess.Popen:
    """A python process that enters ``with context:`` (``context`` imported from ``module``) and waits there."""
    name = context.split("(")[0]
    code = (f"import time\nfrom {module} import {name}\nwith {context}:\n"
            "    print('held', flush=True)\n    time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_dataset_another_process_is_writing_is_refused_not_interleaved():
    holder = _hold_in_another_process("il_toolkit.train.datasets.minari_io", "writer_lock('collect/busy-v0')")
    try:
        with pytest.raises(DatasetBusyError, match=f"another process \\(pid {holder.pid}\\)"):
            collect_dataset("CartPole-v1", "collect/busy-v0", 2, progress=False)
    finally:
        holder.kill()
        holder.wait()
    report = collect_dataset("CartPole-v1", "collect/busy-v0", 2, progress=False)  # the lock died with its process
    assert report.n_episodes == 2 and _seeds("collect/busy-v0") == [0, 1]


def test_if_missing_waits_for_the_process_collecting_and_reuses_its_dataset():
    code = ("import time\nfrom il_toolkit.train.datasets import collect as c\noriginal = c._collect\n"
            "def announced(*a, **k):\n    print('held', flush=True)\n    time.sleep(1.0)\n    return original(*a, **k)\n"
            "c._collect = announced\nc.collect_dataset('CartPole-v1', 'collect/once-v0', 2, progress=False, if_missing=True)")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "held"
        report = collect_dataset("CartPole-v1", "collect/once-v0", 2, progress=False, if_missing=True)
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert (report.n_episodes, report.seconds, report.reused) == (2, 0.0, True)  # waited, collected nothing
    assert _seeds("collect/once-v0") == [0, 1]
    with pytest.raises(DatasetError, match="holds 2 complete episodes, not the 3 asked for"):
        collect_dataset("CartPole-v1", "collect/once-v0", 3, progress=False, if_missing=True)
    with pytest.raises(DatasetError, match="collected from env"):
        collect_dataset("Pendulum-v1", "collect/once-v0", 2, progress=False, if_missing=True)


def test_if_missing_resumes_a_collection_cut_short(monkeypatch):
    from il_toolkit.train.datasets import minari_io

    monkeypatch.setattr(minari_io, "finalize", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        collect_dataset("CartPole-v1", "collect/cut-v0", 2, progress=False)
    monkeypatch.undo()
    report = collect_dataset("CartPole-v1", "collect/cut-v0", 2, progress=False, if_missing=True)
    assert report.n_episodes == 2 and not report.reused and _seeds("collect/cut-v0") == [0, 1]
    assert collect_dataset("CartPole-v1", "collect/cut-v0", 2, progress=False, if_missing=True).reused


def test_if_missing_refuses_what_another_request_wrote(monkeypatch):
    collect_dataset("CartPole-v1", "collect/theirs-v0", 2, seed=5, progress=False)
    for kwargs, message in (({"seed": 0}, "first seed 5 \\(asked: 0\\)"),
                            ({"seed": 5, "only_successful": True}, "only_successful False \\(asked: True\\)"),
                            ({"seed": 5, "top_percentile": 50.0}, "top_percentile None \\(asked: 50.0\\)")):
        with pytest.raises(DatasetError, match=message):
            collect_dataset("CartPole-v1", "collect/theirs-v0", 2, progress=False, if_missing=True, **kwargs)
    with pytest.raises(ValueError, match="overwrite or append"):
        collect_dataset("CartPole-v1", "collect/theirs-v0", 2, seed=5, progress=False, if_missing=True, append=True)
    from il_toolkit.train.datasets import minari_io

    monkeypatch.setattr(minari_io, "finalize", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        collect_dataset("CartPole-v1", "collect/cut-five-v0", 5, progress=False)
    monkeypatch.undo()
    with pytest.raises(DatasetError, match="holds 5 collected episodes, not the 3 asked for"):
        collect_dataset("CartPole-v1", "collect/cut-five-v0", 3, progress=False, if_missing=True)


def _writer_holding(dataset_id: str, seconds: float = 1.0):
    """A started thread that holds ``dataset_id``'s writer lock for ``seconds`` (returns once it holds it)."""
    import threading
    import time

    from il_toolkit.train.datasets.minari_io import writer_lock

    held = threading.Event()

    def write_for_a_while():
        with writer_lock(dataset_id):
            held.set()
            time.sleep(seconds)

    writer = threading.Thread(target=write_for_a_while)
    writer.start()
    held.wait()
    return writer


def test_a_reader_waits_for_the_writer_and_never_reads_half_a_dataset(capsys):
    import time

    collect_dataset("CartPole-v1", "collect/shared-v0", 2, seed=0, progress=False, if_missing=True)
    writer = _writer_holding("collect/shared-v0")
    start = time.perf_counter()
    assert len(load_demonstrations("collect/shared-v0")) == 2
    assert time.perf_counter() - start >= 0.8  # it waited for the writer to finish
    writer.join()
    assert "waiting for another process" in capsys.readouterr().err


def test_the_command_lines_read_which_env_a_dataset_names_only_between_writes():
    """``train --dataset X`` reads X's env from metadata.json, which a collect rewrites in place."""
    import time

    from il_toolkit.train.il.common import env_for_dataset

    collect_dataset("CartPole-v1", "collect/shared-env-v0", 1, progress=False)
    writer = _writer_holding("collect/shared-env-v0")
    start = time.perf_counter()
    assert env_for_dataset("collect/shared-env-v0").spec.id == "il_toolkit/CartPole-v1"
    assert time.perf_counter() - start >= 0.8
    writer.join()


def test_an_expert_whose_actions_do_not_fit_the_env_leaves_no_empty_dataset():
    from il_toolkit.train.datasets.minari_io import DatasetError, dataset_path

    with pytest.raises(DatasetError, match=r"first action \[0, 0\] \(shape \(2,\)\) is not an action of the env's action space Discrete"):
        collect_dataset("CartPole-v1", "tests/wrong-expert-v0", 2, expert=lambda obs: np.array([0.3, 0.2]),
                        progress=False)
    assert not dataset_path("tests/wrong-expert-v0").exists()
    pusht_expert = make_expert("il_toolkit/PushT-v0")  # declares PushT's Box(2,) actions
    with pytest.raises(DatasetError, match="the expert acts in Box.*give an expert for this env"):
        collect_dataset("CartPole-v1", "tests/wrong-expert-v0", 2, expert=pusht_expert, progress=False)

    calls = []

    def failing(obs):  # fails on every 5th call: a few steps into each episode
        calls.append(1)
        if len(calls) % 5 == 0:
            raise RuntimeError("expert lost")
        return 0

    with pytest.raises(DatasetError, match="only 0 of 2 episodes could be kept.*no dataset was written: fix the expert$"):
        collect_dataset("CartPole-v1", "tests/wrong-expert-v0", 2, expert=failing, progress=False)
    assert not dataset_path("tests/wrong-expert-v0").exists()
    report = collect_dataset("CartPole-v1", "tests/function-expert-v0", 1, expert=lambda obs: int(obs[2] + 0.1 * obs[3] > 0),
                             progress=False)
    assert report.n_episodes == 1


def _truncate_episode_file(dataset_id: str) -> None:
    """Cut main_data.hdf5 in half, as a full disk or a copy stopped midway leaves it."""
    from il_toolkit.train.datasets.minari_io import dataset_path

    path = dataset_path(dataset_id) / "data" / "main_data.hdf5"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_dataset_whose_episode_file_is_cut_is_never_taken_as_complete(capsys):
    """--if-missing used to call it complete, --append crashed with h5py's OSError, `datasets` listed it as fine."""
    collect_dataset("CartPole-v1", "collect/truncated-v0", 2, progress=False)
    _truncate_episode_file("collect/truncated-v0")
    fix = "corrupt or incomplete \\(OSError: .*truncated file.*\\); collect it again with --overwrite$"
    with pytest.raises(DatasetError, match=fix):
        collect_dataset("CartPole-v1", "collect/truncated-v0", 2, progress=False, if_missing=True)
    with pytest.raises(DatasetError, match=fix):
        collect_dataset("CartPole-v1", "collect/truncated-v0", 1, progress=False, append=True)
    from il_toolkit.cli import main

    capsys.readouterr()
    assert main(["datasets"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("collect/truncated-v0:"))
    assert "corrupt, its episode data cannot be read (OSError" in line and line.endswith("again with --overwrite")
    assert collect_dataset("CartPole-v1", "collect/truncated-v0", 2, progress=False, overwrite=True).n_episodes == 2


def test_a_dataset_missing_an_episode_its_metadata_counts_is_refused():
    import h5py

    from il_toolkit.train.datasets.minari_io import dataset_path

    collect_dataset("CartPole-v1", "collect/lost-episode-v0", 3, progress=False)
    with h5py.File(dataset_path("collect/lost-episode-v0") / "data" / "main_data.hdf5", "a") as file:
        del file["episode_1"]
    with pytest.raises(DatasetError, match="lacks 1 of the 3 episodes its metadata counts, first episode_1.*--overwrite"):
        collect_dataset("CartPole-v1", "collect/lost-episode-v0", 3, progress=False, if_missing=True)


def test_datasets_marks_a_collection_cut_short_as_incomplete(monkeypatch, capsys):
    from il_toolkit.cli import main
    from il_toolkit.train.datasets import minari_io

    monkeypatch.setattr(minari_io, "finalize", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        collect_dataset("CartPole-v1", "collect/listed-cut-v0", 1, progress=False)
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["datasets"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("collect/listed-cut-v0:"))
    assert line.startswith("collect/listed-cut-v0: 1 episodes") and "(incomplete: its collection was cut short" in line
    assert "rerun the collect (or teleop) command that wrote it to finish it" in line


def test_resuming_a_collection_cut_short_with_another_seed_is_refused(monkeypatch):
    from il_toolkit.train.datasets import minari_io

    monkeypatch.setattr(collect_module, "_rollout", _interrupted_at_rollout(3))
    with pytest.raises(KeyboardInterrupt):
        collect_dataset("CartPole-v1", "collect/reseeded-v0", 4, seed=20, progress=False)
    monkeypatch.undo()
    with pytest.raises(DatasetError, match="was started with --seed 20 and its collection was cut short after 2 "
                                           "episodes; rerun with --seed 20 to finish it, or pass --overwrite"):
        collect_dataset("CartPole-v1", "collect/reseeded-v0", 4, seed=0, progress=False)
    assert dataset_metadata(minari_io.open_dataset("collect/reseeded-v0"))["il_toolkit_complete"] is False  # untouched
    assert collect_dataset("CartPole-v1", "collect/reseeded-v0", 4, seed=20, progress=False).resumed_from == 2
    assert _seeds("collect/reseeded-v0") == [20, 21, 22, 23]
