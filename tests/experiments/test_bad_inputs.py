"""Bad input, table-driven and in-process: every case exits non-zero with one message naming its field or file.

Values that cannot apply are refused when the command line is parsed (tyro's
usage error, exit code 2); bad data, workdirs and checkpoints when the run meets
them (one ``error:`` line, exit code 2). None of these cases trains.
"""

import gzip
import re

import numpy as np
import pytest

from experiments import (
    acgan_mnist,
    cgan_mnist,
    cyclegan,
    dcgan_mnist,
    gaussian_mixture,
    msggan,
    pggan,
    sagan,
    style_transfer,
    train_mnist_classifier,
    vaegan_mnist,
    wgan_gp_mnist,
)

# (experiment, arguments, what the message names); the arguments are added to a valid tiny command line.
PARSE_CASES = [
    (dcgan_mnist, ["--schedule.steps", "0"], "GANSchedule.steps: must be at least 1"),
    (dcgan_mnist, ["--schedule.steps", "-5"], "GANSchedule.steps: must be at least 1"),
    (dcgan_mnist, ["--schedule.batch-size", "0"], "GANSchedule.batch_size: must be at least 1"),
    (dcgan_mnist, ["--schedule.n-critic", "0"], "GANSchedule.n_critic: must be at least 1"),
    (dcgan_mnist, ["--optim.lr-g", "0"], "Optimizers.lr_g: must be positive"),
    (dcgan_mnist, ["--optim.lr-g", "inf"], "Optimizers.lr_g: must be finite, got inf"),
    (dcgan_mnist, ["--optim.lr-d", "nan"], "Optimizers.lr_d: must be finite, got nan"),
    (dcgan_mnist, ["--run.seed", str(2**32)], "Run.seed: must be in [0, 4294967295]"),
    (dcgan_mnist, ["--evaluation.classifier-dir", __file__], "Evaluation.classifier_dir: "),
    (dcgan_mnist, ["--noise.std", "inf"], "InputNoise.std"),
    (cyclegan, ["--model.d-layers", "10"], "Model.d_layers: 10 stride-2 layers need images of at least 1024 px"),
    (style_transfer, ["--content", "a.png", "--style", "b.png", "--output", "out"], "Config.output"),
    (train_mnist_classifier, ["--training.shift", "100"], "ClassifierTraining.shift: must be in [0, 13]"),
    (dcgan_mnist, ["--optim.lr-d", "-1e-3"], "Optimizers.lr_d: must be positive"),
    (dcgan_mnist, ["--optim.b1", "2"], "Optimizers.b1: must be in [0, 1)"),
    (dcgan_mnist, ["--optim.b2", "-0.5"], "Optimizers.b2: must be in [0, 1)"),
    (dcgan_mnist, ["--optim.grad-clip", "-1"], "Optimizers.grad_clip: must be positive"),
    (dcgan_mnist, ["--optim.grad-noise", "0"], "Optimizers.grad_noise: must be positive"),
    (dcgan_mnist, ["--optim.weight-clip", "-0.01"], "Optimizers.weight_clip: must be positive"),
    (dcgan_mnist, ["--optim.g-optimizer", "adamw"], "adamw"),
    (dcgan_mnist, ["--optim.optimistic", "--optim.d-optimizer", "rmsprop"], "Optimizers.optimistic"),
    (dcgan_mnist, ["--run.seed", "-1"], "Run.seed: must be in [0, 4294967295]"),
    (dcgan_mnist, ["--run.log-every", "0"], "Run.log_every: must be at least 1"),
    (dcgan_mnist, ["--run.sample-every", "0"], "Run.sample_every: must be at least 1"),
    (dcgan_mnist, ["--run.checkpoint-every", "0"], "Run.checkpoint_every: must be at least 1"),
    (dcgan_mnist, ["--run.keep-checkpoints", "0"], "Run.keep_checkpoints: must be at least 1"),
    (dcgan_mnist, ["--run.resume", "--run.overwrite"], "Run.overwrite"),
    (dcgan_mnist, ["--run.allow-changes", "lr_g"], "Run.allow_changes"),
    (dcgan_mnist, ["--num-samples", "0"], "Config.num_samples: must be at least 1"),
    (dcgan_mnist, ["--data.channels", "2"], "--data.channels"),
    (dcgan_mnist, ["--data.image-size", "0"], "Data.image_size: must be at least 1"),
    (dcgan_mnist, ["--model.g-width", "0"], "DCGANModel.g_width: must be at least 1"),
    (dcgan_mnist, ["--model.g-dropout", "1"], "DCGANModel.g_dropout"),
    (dcgan_mnist, ["--model.g-noise-std", "-1"], "DCGANModel.g_noise_std"),
    (dcgan_mnist, ["--model.d-norm", "group"], "group"),
    (dcgan_mnist, ["--model.compute-dtype", "float16"], "float16"),
    (dcgan_mnist, ["--latent.dim", "0"], "Latent.dim"),
    (dcgan_mnist, ["--latent.distribution", "cauchy"], "cauchy"),
    (
        dcgan_mnist,
        ["--objective.loss", "hinge", "--objective.d-labels", "none", "--objective.label-flip-prob", "0.1"],
        "Objective.label_flip_prob",
    ),
    (dcgan_mnist, ["--objective.loss", "hinge"], "Objective.d_labels"),
    (dcgan_mnist, ["--objective.label-flip-prob", "1.5"], "Objective.label_flip_prob"),
    (dcgan_mnist, ["--objective.penalty", "r1"], "Objective.penalty_weight"),
    (dcgan_mnist, ["--objective.penalty", "r1", "--objective.penalty-weight", "-1"], "Objective.penalty_weight"),
    (dcgan_mnist, ["--objective.penalty-every", "4"], "Objective.penalty_every"),
    (dcgan_mnist, ["--noise.std", "-0.1"], "InputNoise.std"),
    (dcgan_mnist, ["--state.ema-decay", "1.5"], "StateOptions.ema_decay: must be in [0, 1)"),
    (dcgan_mnist, ["--state.replay-share", "0.5"], "StateOptions.replay_share"),
    (dcgan_mnist, ["--state.replay-capacity", "-1"], "StateOptions.replay_capacity"),
    (dcgan_mnist, ["--evaluation.eval-every", "-1"], "Evaluation.eval_every: must be at least 0"),
    (dcgan_mnist, ["--evaluation.eval-samples", "1"], "Evaluation.eval_samples: must be at least 2"),
    (dcgan_mnist, ["--monitor.window", "1"], "Monitor.window: must be at least 2"),
    (dcgan_mnist, ["--monitor.max-grad-norm", "0"], "Monitor.max_grad_norm: must be positive"),
    (dcgan_mnist, ["--monitor.warmup", "601"], "Monitor.warmup: must be in [0, 600], got 601"),
    (dcgan_mnist, ["--monitor.stop-on", "d_loss_negative"], "d_loss_negative"),
    (dcgan_mnist, ["--devices.num-devices", "-1"], "BatchNormDevices.num_devices"),
    (dcgan_mnist, ["--schedule.steps", "ten"], "ten"),
    (wgan_gp_mnist, ["--objective.penalty-weight", "-10"], "Objective.penalty_weight"),
    (dcgan_mnist, ["--class-head.weight", "-1"], "ClassHead.weight: must be at least 0.0"),
    (dcgan_mnist, ["--class-head.weight", "1", "--class-head.num-classes", "1"], "ClassHead.num_classes"),
    (
        wgan_gp_mnist,
        ["--class-head.weight", "0", "--class-head.entropy-weight", "1"],
        "ClassHead.entropy_weight: is 1.0 with no class head",
    ),
    (dcgan_mnist, ["--clusters.k", "1"], "Clusters.k: must be at least 2"),
    (dcgan_mnist, ["--clusters.k", "0", "--clusters.iterations", "5"], "Clusters.iterations: is 5 with no clusters"),
    (
        dcgan_mnist,
        ["--clusters.k", "0", "--clusters.fake-classes", "reals"],
        "Clusters.fake_classes: is 'reals' with no clusters",
    ),
    (
        wgan_gp_mnist,
        ["--clusters.k", "0", "--clusters.d-conditioning", "channels"],
        "Clusters.d_conditioning: is 'channels' with no clusters",
    ),
    (
        wgan_gp_mnist,
        ["--clusters.k", "10", "--class-head.weight", "1"],
        "Clusters.k: conditions on clusters, with class_head.weight > 0 on labels",
    ),
    (cgan_mnist, ["--model.d-conditioning", "auxiliary"], "ConditionalModel.d_conditioning"),
    (cgan_mnist, ["--model.g-embed-dim", "0"], "ConditionalModel.g_embed_dim: must be at least 1"),
    (cgan_mnist, ["--conditioning.num-classes", "0"], "Conditioning.num_classes"),
    (cgan_mnist, ["--class-accuracy.eval-per-class", "0"], "ClassAccuracy.eval_per_class"),
    (cgan_mnist, ["--swaps.player", "e"], "'e'"),
    (acgan_mnist, ["--conditioning.aux-class-weight", "0"], "ConditionalModel.d_conditioning"),
    (sagan, ["--model.num-classes", "-1"], "Model.num_classes"),
    (msggan, ["--model.d-width", "0"], "Model.d_width: must be at least 1"),
    (vaegan_mnist, ["--model.gamma", "-1"], "Model.gamma"),
    (vaegan_mnist, ["--holdout", "10"], "Config.holdout"),
    (pggan, ["--data.image-size", "28"], "Data.image_size: must be 4 * 2^k"),
    (pggan, ["--ema-decay", "1"], "Config.ema_decay"),
    (pggan, ["--critic.drift", "-1"], "Critic.drift"),
    (cyclegan, ["--optim.lr", "0"], "Optimizer.lr: must be positive"),
    (cyclegan, ["--optim.b1", "1"], "Optimizer.b1: must be in [0, 1)"),
    (cyclegan, ["--pool.share", "2"], "Pool.share"),
    (cyclegan, ["--data-a", "x"], "Config.data_b"),
    (gaussian_mixture, ["--mixture", "spiral"], "spiral"),
    (gaussian_mixture, ["--model.g-depth", "0"], "Model.g_depth: must be at least 1"),
    (gaussian_mixture, ["--evaluation.eval-samples", "0"], "Evaluation.eval_samples: must be at least 1"),
    (style_transfer, ["--content", "a.png", "--style", "b.png", "--lr", "0.1"], "Config.lr"),
    (style_transfer, ["--content", "a.png", "--style", "b.png", "--style-weight", "-1"], "Config.style_weight"),
    (style_transfer, ["--content", "a.png", "--style", "b.png", "--size", "0"], "Config.size"),
    (train_mnist_classifier, ["--training.lr", "0"], "ClassifierTraining.lr: must be positive"),
    (train_mnist_classifier, ["--training.shift", "-1"], "ClassifierTraining.shift"),
    # Flags an experiment does not have, and values its parts refuse together.
    (dcgan_mnist, ["--swaps.every", "3"], "Unrecognized options: --swaps.every"),
    (msggan, ["--devices.cross-replica-bn", "on"], "Unrecognized options: --devices.cross-replica-bn"),
    (gaussian_mixture, ["--data.dir", "x"], "Unrecognized options: --data.dir"),
    (sagan, ["--evaluation.eval-every", "3"], "Unrecognized options: --evaluation.eval-every"),
    (dcgan_mnist, ["--objective.loss", "wasserstein", "--objective.d-labels", "one_sided"], "Objective.d_labels"),
    (dcgan_mnist, ["--objective.loss", "hingee"], "Invalid choice"),
    (cgan_mnist, ["--swaps.every", "3", "--swaps.duration", "5"], "SwapConfig.duration"),
    (vaegan_mnist, ["--state.ema-decay", "0.9"], "Unrecognized options: --state.ema-decay"),
    (vaegan_mnist, ["--latent.distribution", "uniform"], "VAEGAN.gan.latent.distribution"),
    (vaegan_mnist, ["--objective.g-objective", "feature_matching"], "VAEGAN.gan.objective.g_objective"),
    (vaegan_mnist, ["--objective.packing", "2"], "VAEGAN.gan.objective.packing"),
    (cgan_mnist, ["--objective.packing", "2"], "Objective.packing"),
    (dcgan_mnist, ["--objective.packing", "0"], "Objective.packing"),
    (cyclegan, ["--schedule.n-critic", "2"], "Unrecognized options: --schedule.n-critic"),
    (cyclegan, ["--objective.loss", "hinge"], "Unrecognized options: --objective.loss"),
    (cyclegan, ["--data-a", "x", "--data-b", "y", "--data.dir", "z"], "Data.dir: the domains come from"),
    (pggan, ["--schedule.n-critic", "2"], "Unrecognized options: --schedule.n-critic"),
    (pggan, ["--latent.dim", "8"], "Unrecognized options: --latent.dim"),
    (wgan_gp_mnist, ["--optim.lr-d", "0"], "Optimizers.lr_d: must be positive, got 0.0"),
    (cyclegan, ["--num-samples", "0"], "Config.num_samples: must be at least 1, got 0"),
]


def unboxed(text: str) -> str:
    """tyro's usage error without its box and line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize(
    "module, args, named", PARSE_CASES, ids=[f"{m.__name__.split('.')[-1]}:{' '.join(a)}" for m, a, _ in PARSE_CASES]
)
def test_a_value_that_cannot_apply_is_refused_when_parsed(module, args, named, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        module.main(["--run.workdir", str(tmp_path / "run"), *args] if hasattr(module.Config, "run") else args)
    assert exit.value.code == 2
    assert named in unboxed(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def write_idx(path, magic, array):
    header = magic.to_bytes(4, "big")[:3] + bytes([array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def truncated_idx(folder):
    write_idx(folder / "t10k-images-idx3-ubyte.gz", 2051, np.zeros((10, 28, 28), np.uint8))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes((folder / "t10k-images-idx3-ubyte.gz").read_bytes()[:-20])


def few_labels(folder):
    write_idx(folder / "t10k-images-idx3-ubyte.gz", 2051, np.zeros((10, 28, 28), np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", 2049, np.zeros(9, np.uint8))


def not_images(folder):
    (folder / "notes.png").write_text("not a png")


# (what the folder holds, extra arguments, the message): each is met when the run loads its data.
RUN_CASES = [
    (
        lambda d: write_idx(d / "t10k-images-idx3-ubyte.gz", 2051, np.zeros((0, 28, 28), np.uint8)),
        [],
        "holds no images",
    ),
    (truncated_idx, [], "t10k-images-idx3-ubyte.gz: cannot read IDX file"),
    (few_labels, [], "t10k-labels-idx1-ubyte.gz: 9 labels but t10k-images-idx3-ubyte.gz holds 10 images"),
    (not_images, ["--data.image-size", "28", "--data.channels", "1"], "notes.png: unreadable image"),
    (lambda d: None, [], "no images in the folder"),
    (
        lambda d: write_idx(d / "t10k-images-idx3-ubyte.gz", 2051, np.zeros((10, 28, 28), np.uint8)),
        ["--clusters.k", "0"],
        "holds 10 examples, too few for batches of 16",
    ),
    (
        lambda d: write_idx(d / "t10k-images-idx3-ubyte.gz", 2051, np.zeros((40, 28, 28), np.uint8)),
        [],
        "Clusters.k: is 50, more clusters than",
    ),
    (
        lambda d: write_idx(d / "t10k-images-idx3-ubyte.gz", 2051, np.zeros((40, 28, 28), np.uint8)),
        ["--data.image-size", "32"],
        "images are (28, 28, 1), but the config asks for image_size=32",
    ),
    (
        lambda d: write_idx(d / "t10k-images-idx3-ubyte.gz", 2051, np.zeros((40, 28, 28), np.uint8)),
        ["--clusters.k", "0", "--class-head.weight", "1"],
        "D's class head needs labelled data (for an image folder: --data.folder-labels); --class-head.weight 0 trains",
    ),
]


# (experiment, arguments, the message): met when the run reads its data, before it trains.
DATA_CASES = [
    (dcgan_mnist, ["--data.split", "t10kk"], "no 't10kk*images-idx3-ubyte[.gz]' file in the folder"),
    (cgan_mnist, ["--conditioning.num-classes", "5"], "holds 10 classes, but the config's num_classes is 5"),
    (dcgan_mnist, ["--clusters.k", "20000"], "Clusters.k: is 20000, more clusters than"),
    (vaegan_mnist, ["--holdout", "20000"], "holdout=20000 leaves none to train"),
    (train_mnist_classifier, ["--training.test-size", "20000"], "training.test_size=20000 leaves none"),
]


@pytest.mark.parametrize(
    "module, args, named", DATA_CASES, ids=[f"{m.__name__.split('.')[-1]}:{' '.join(a)}" for m, a, _ in DATA_CASES]
)
def test_a_value_the_data_cannot_meet_is_one_line_naming_it(module, args, named, tmp_path, capsys):
    where = ["--run.workdir", str(tmp_path / "run")] if hasattr(module.Config, "run") else ["--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit:
        module.main([*where, *args])
    err = capsys.readouterr().err.rsplit("\r", 1)[-1]
    assert exit.value.code == 2 and err.startswith("error: ") and named in err


def test_a_classifier_that_does_not_learn_fails_and_is_not_saved(tmp_path, capsys):
    args = ["--training.steps", "3", "--training.width", "4", "--training.lr", "1e30", "--out", str(tmp_path / "c")]
    with pytest.raises(SystemExit) as exit:
        train_mnist_classifier.main(args)
    assert exit.value.code == 1 and "is below min_accuracy 0.9: the classifier was not saved" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("make, args, named", RUN_CASES)
def test_bad_data_is_one_line_naming_the_file(make, args, named, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    make(folder)
    with pytest.raises(SystemExit) as exit:
        dcgan_mnist.main(["--data.dir", str(folder), "--run.workdir", str(tmp_path / "run"), *TINY, *args])
    err = capsys.readouterr().err.rsplit("\r", 1)[-1]  # after the progress bar's line, cleared
    assert exit.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert named in err


TINY = ["--schedule.batch-size", "16", "--evaluation.eval-every", "0", "--model.g-width", "8", "--model.d-width", "8"]


@pytest.mark.parametrize(
    "make, args, named",
    [
        (lambda w: w.write_text("x"), [], "run.workdir is a file, not a folder"),
        (lambda w: (w.mkdir(), (w / "x").write_text("x")), [], "already holds a run: pass --run.resume"),
        (lambda w: None, ["--run.resume"], "nothing to resume (no checkpoint there)"),
        (lambda w: w.parent.joinpath("file").write_text("x"), ["--run.workdir", "FILE/run"], "Not a directory"),
        (lambda w: w.mkdir(), ["--run.resume"], "nothing to resume (no checkpoint there)"),
    ],
)
def test_a_bad_workdir_is_one_line_naming_it(make, args, named, mnist_dir, tmp_path, capsys):
    workdir = tmp_path / "run"
    make(workdir)
    if "FILE/run" in args:  # a workdir below a file: the OSError names the path
        workdir = tmp_path / "file" / "run"
        args = ["--run.workdir", str(workdir)]
    with pytest.raises(SystemExit) as exit:
        dcgan_mnist.main(["--data.dir", str(mnist_dir), "--run.workdir", str(tmp_path / "run"), *TINY, *args])
    err = capsys.readouterr().err
    assert exit.value.code == 2, err
    assert str(workdir) in err and named in err and err.startswith("error: ") and err.count("\n") == 1
