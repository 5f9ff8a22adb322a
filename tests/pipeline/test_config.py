from pathlib import Path

import pytest

from pipeline.config import Config, ConfigError, load_config, save_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_match_the_paper():
    cfg = load_config(None)
    assert cfg.codec.input_size == (192, 256) and cfg.codec.heatmap_size == (48, 64)
    assert cfg.codec.sigma == 2.0
    assert cfg.optim.lr == 1e-3 and cfg.optim.lr_steps == (70, 90) and cfg.optim.epochs == 100
    assert cfg.augment.easy_rotation_prob == 0.6 and cfg.augment.hard_rotation_prob == 0.8
    assert cfg.method.pcm_score_thr == 0.1 and cfg.method.sup_weight == 0.5


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 0.01\n  lr_steps: [3, 4]\ncodec:\n  input_size: [96, 128]\n")
    cfg = load_config(p, ["--optim.epochs=7", "method.name=sspcm", "method.pcm_pi_thr=0.05"])
    assert cfg.optim.lr == 0.01 and cfg.optim.lr_steps == (3, 4) and cfg.optim.epochs == 7
    assert cfg.codec.input_size == (96, 128)
    assert cfg.method.name == "sspcm" and cfg.method.pcm_pi_thr == 0.05


def test_unknown_field_names_file_and_field(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  learning_rate: 0.01\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "optim.learning_rate" in str(e.value)


@pytest.mark.parametrize(
    "override, needle",
    [
        ("bogus.x=1", "unknown section 'bogus'"),
        ("train.sed=1", "train.sed"),
        ("optim.lr=fast", "optim.lr"),
        ("method.name=magic", "method.name"),
        ("codec.input_size=[1]", "codec.input_size"),
        ("optim.epochs=1.5", "optim.epochs"),
    ],
)
def test_bad_overrides_are_named(override, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
        load_config(None, [override])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["method.name=dual", "codec.input_size=[96,128]"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and isinstance(again, Config)


def test_every_shipped_config_loads():
    configs = sorted((REPO / "configs").glob("*.yaml"))
    assert configs, "no configs shipped"
    for p in configs:
        load_config(p)


def test_init_checkpoints_reach_each_role():
    from pipeline.run_setup import network_specs

    cfg = load_config(None, ["method.name=sspcm", "model.teacher_b_init=runs/b", "model.student_init=runs/a"])
    specs = network_specs(cfg, 17)
    inits = [specs[r].init_weights for r in ("teacher_a", "teacher_b", "student")]
    assert inits == [None, "runs/b", "runs/a"]
