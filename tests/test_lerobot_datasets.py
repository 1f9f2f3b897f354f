"""LeRobot-style datasets over our Minari data, and conversion from the LeRobot format
(a small dataset in that format is written by the test itself)."""

import io
import json

import numpy as np
import pytest

from il_toolkit.train.datasets.collect import collect_dataset
from il_toolkit.train.datasets.lerobot_convert import convert_lerobot
from il_toolkit.train.datasets.lerobot_dataset import (
    LEROBOT_ALIASES,
    PushTDataset,
    create_lerobot_dataloader,
    resolve_dataset,
)
from il_toolkit.train.datasets.minari_io import DatasetError, load_demonstrations


@pytest.fixture(scope="module")
def pusht_pixels():
    collect_dataset("PushT-v0", "lr/pusht-pixels-v0", 3, env_kwargs={"obs_type": "pixels_agent_pos"}, progress=False)
    return "lr/pusht-pixels-v0"


def test_pusht_dataset_samples_windows_and_chunks(pusht_pixels):
    train = PushTDataset(split="train", chunk_size=10, n_obs_steps=2, dataset=pusht_pixels)
    val = PushTDataset(split="val", chunk_size=10, n_obs_steps=2, dataset=pusht_pixels)
    assert {e["id"] for e in train.episodes}.isdisjoint({e["id"] for e in val.episodes})
    sample = train[0]
    assert sample["observation.images.top"].shape == (2, 3, 96, 96)
    assert sample["observation.state"].shape == (2, 2) and sample["action"].shape == (10, 2)
    assert sample["task"] == "push the T block onto the target"
    last = max(i for i, (e, _) in enumerate(train.index) if e == 0)
    assert sample["action_is_pad"].sum() == 0 and train[last]["action_is_pad"].sum() == 9
    demos = load_demonstrations(pusht_pixels)
    first = train.episodes[0]["id"]
    np.testing.assert_array_equal(train[0]["action"][0].numpy(), demos[first].acts[0])
    batch = next(iter(create_lerobot_dataloader(train, batch_size=4)))
    assert batch["action"].shape == (4, 10, 2) and len(batch["task"]) == 4


def test_lerobot_ids_map_to_local_data(capsys, monkeypatch):
    assert "lerobot/pusht" in LEROBOT_ALIASES
    with pytest.raises(DatasetError, match="not collected yet"):
        resolve_dataset("lerobot/aloha_sim_insertion_scripted", collect_missing=False)
    assert "hub datasets are not downloaded" in capsys.readouterr().err
    assert resolve_dataset("my/own-v0") == "my/own-v0"


def _png(image):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_lerobot(root, episodes=2, frames=5, video=False):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    features = {
        "observation.state": {"dtype": "float32", "shape": [2]},
        "observation.image": {"dtype": "video" if video else "image", "shape": [96, 96, 3]},
        "action": {"dtype": "float32", "shape": [2]},
        "next.reward": {"dtype": "float32", "shape": [1]},
        "next.done": {"dtype": "bool", "shape": [1]},
        "episode_index": {"dtype": "int64", "shape": [1]},
        "frame_index": {"dtype": "int64", "shape": [1]},
        "task_index": {"dtype": "int64", "shape": [1]},
    }
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps({
        "fps": 10, "total_episodes": episodes, "chunks_size": 1000, "features": features,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
    }))
    (root / "meta" / "tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "push the T block onto the target"}) + "\n")
    written = []
    for e in range(episodes):
        images = rng.integers(0, 255, size=(frames, 96, 96, 3), dtype=np.uint8)
        state = rng.uniform(0, 512, size=(frames, 2)).astype(np.float32)
        action = rng.uniform(0, 512, size=(frames, 2)).astype(np.float32)
        columns = {
            "observation.state": state.tolist(), "action": action.tolist(),
            "next.reward": [0.0] * (frames - 1) + [1.0], "next.done": [False] * (frames - 1) + [True],
            "episode_index": [e] * frames, "frame_index": list(range(frames)), "task_index": [0] * frames,
        }
        if video:
            import imageio.v3 as iio

            path = root / "videos" / "chunk-000" / "observation.image" / f"episode_{e:06d}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            iio.imwrite(path, images, fps=10)
        else:
            columns["observation.image"] = [{"bytes": _png(i), "path": None} for i in images]
        path = root / "data" / "chunk-000" / f"episode_{e:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)
        written.append((images, state, action))
    return written


@pytest.mark.parametrize("name", ["lerobot/aloha_sim_transfer_cube_human", "jxu124/OpenX-Embodiment"])
def test_hub_datasets_we_cannot_fetch_name_the_offline_routes(name):
    from il_toolkit.train.datasets.lerobot_dataset import resolve_dataset

    with pytest.raises(DatasetError, match="hub datasets are not downloaded.*lerobot/pusht.*convert-lerobot.*teleop"):
        resolve_dataset(name)


def test_convert_lerobot_images_into_a_pusht_dataset(tmp_path):
    written = _write_lerobot(tmp_path / "lerobot_pusht")
    report = convert_lerobot(tmp_path / "lerobot_pusht", "lr/converted-v0", env_id="il_toolkit/PushT-v0",
                             env_kwargs={"obs_type": "pixels_agent_pos"})
    assert report["episodes"] == 2 and report["steps"] == 10
    assert report["instructions"] == ["push the T block onto the target"]
    from il_toolkit.envs import make_env

    demos = load_demonstrations("lr/converted-v0", env=make_env("PushT-v0", obs_type="pixels_agent_pos"))
    images, state, action = written[1]
    np.testing.assert_array_equal(demos[1].obs.get("pixels")[:5], images)  # PNG is lossless
    np.testing.assert_allclose(demos[1].obs.get("agent_pos")[:5], state, rtol=1e-6)
    np.testing.assert_array_equal(demos[1].acts, action)
    assert demos[1].terminal and float(demos[1].rews.sum()) == 1.0
    sample = PushTDataset(split="all", chunk_size=3, dataset="lr/converted-v0")[0]
    assert sample["observation.images.top"].shape == (1, 3, 96, 96)


def test_convert_lerobot_videos(tmp_path):
    _write_lerobot(tmp_path / "video_ds", episodes=1, frames=6, video=True)
    report = convert_lerobot(tmp_path / "video_ds", "lr/video-v0")
    demos = load_demonstrations("lr/video-v0")
    assert report["steps"] == 6 and demos[0].obs.get("pixels").shape == (7, 96, 96, 3)


def test_mismatched_env_and_broken_roots_are_refused(tmp_path):
    _write_lerobot(tmp_path / "ds", episodes=1)
    with pytest.raises(DatasetError, match="does not match env il_toolkit/PushT-v0 observation space"):
        convert_lerobot(tmp_path / "ds", "lr/mismatch-v0", env_id="il_toolkit/PushT-v0")  # state obs, not pixels
    with pytest.raises(DatasetError, match="meta/info.json is missing"):
        convert_lerobot(tmp_path / "nowhere", "lr/none-v0")
