"""Write the small real-format TF checkpoint that tests/test_convert_tf.py converts.

Needs TensorFlow, which deepfill does not depend on; run it from a separate environment:

    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu
    /tmp/tfenv/bin/python scripts/make_tf_fixture.py [--out tests/fixtures/tf_v1_small]

The variables carry the names and the shapes (for a small cnum) that the released DeepFill v1
code (``inpaint_model.py``: ``build_inpaint_net``, ``build_wgan_discriminator``) creates,
filled with seeded random values, plus a few training-only variables (Adam slots,
``beta1_power``, ``global_step``) and three non-float32 tensors for the reader. They are saved
with ``tf.compat.v1.train.Saver`` as ``snap-10``; ``expected.json`` beside them records values
in TF layout (HWIO kernels, BGR channel order) that the test looks up after conversion.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

GEN_CNUM = 2  # keeps the fixture < 100 KB; cnum 4 would need 232 KB of float32 for the generator
CRITIC_CNUM = 2
LOCAL_SIZE, GLOBAL_SIZE = 32, 64  # critic input sizes; the dense layers' widths follow from them


def generator_layers(c: int) -> list[tuple[str, int, int, int]]:
    """(TF scope, ksize, in, out) of every conv of ``build_inpaint_net``, written out by hand."""
    up = lambda name: f"{name}/{name}_conv"  # noqa: E731  gen_deconv nests gen_conv(name + '_conv')
    return [
        ("conv1", 5, 5, c), ("conv2_downsample", 3, c, 2 * c), ("conv3", 3, 2 * c, 2 * c),
        ("conv4_downsample", 3, 2 * c, 4 * c), ("conv5", 3, 4 * c, 4 * c), ("conv6", 3, 4 * c, 4 * c),
        ("conv7_atrous", 3, 4 * c, 4 * c), ("conv8_atrous", 3, 4 * c, 4 * c),
        ("conv9_atrous", 3, 4 * c, 4 * c), ("conv10_atrous", 3, 4 * c, 4 * c),
        ("conv11", 3, 4 * c, 4 * c), ("conv12", 3, 4 * c, 4 * c), (up("conv13_upsample"), 3, 4 * c, 2 * c),
        ("conv14", 3, 2 * c, 2 * c), (up("conv15_upsample"), 3, 2 * c, c), ("conv16", 3, c, c // 2),
        ("conv17", 3, c // 2, 3),
        ("xconv1", 5, 5, c), ("xconv2_downsample", 3, c, c), ("xconv3", 3, c, 2 * c),
        ("xconv4_downsample", 3, 2 * c, 2 * c), ("xconv5", 3, 2 * c, 4 * c), ("xconv6", 3, 4 * c, 4 * c),
        ("xconv7_atrous", 3, 4 * c, 4 * c), ("xconv8_atrous", 3, 4 * c, 4 * c),
        ("xconv9_atrous", 3, 4 * c, 4 * c), ("xconv10_atrous", 3, 4 * c, 4 * c),
        ("pmconv1", 5, 5, c), ("pmconv2_downsample", 3, c, c), ("pmconv3", 3, c, 2 * c),
        ("pmconv4_downsample", 3, 2 * c, 4 * c), ("pmconv5", 3, 4 * c, 4 * c), ("pmconv6", 3, 4 * c, 4 * c),
        ("pmconv9", 3, 4 * c, 4 * c), ("pmconv10", 3, 4 * c, 4 * c),
        ("allconv11", 3, 8 * c, 4 * c), ("allconv12", 3, 4 * c, 4 * c), (up("allconv13_upsample"), 3, 4 * c, 2 * c),
        ("allconv14", 3, 2 * c, 2 * c), (up("allconv15_upsample"), 3, 2 * c, c), ("allconv16", 3, c, c // 2),
        ("allconv17", 3, c // 2, 3),
    ]


def critic_variables(c: int) -> dict[str, tuple[int, ...]]:
    """Shapes of ``discriminator/...``: four 5x5 dis_convs per critic, then dense layers to 1."""
    shapes: dict[str, tuple[int, ...]] = {}
    for critic, widths, size in (("local", (c, 2 * c, 4 * c, 8 * c), LOCAL_SIZE),
                                 ("global", (c, 2 * c, 4 * c, 4 * c), GLOBAL_SIZE)):
        cin = 3
        for i, cout in enumerate(widths, 1):
            shapes[f"discriminator/discriminator_{critic}/conv{i}/kernel"] = (5, 5, cin, cout)
            shapes[f"discriminator/discriminator_{critic}/conv{i}/bias"] = (cout,)
            cin = cout
        shapes[f"discriminator/dout_{critic}_fc/kernel"] = (cin * (size // 16) ** 2, 1)
        shapes[f"discriminator/dout_{critic}_fc/bias"] = (1,)
    return shapes


def analytic_image(height: int, width: int) -> np.ndarray:
    """A smooth RGB test image in [-0.8, 0.8], [H, W, 3]; tests rebuild it the same way."""
    i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([0.8 * np.sin(0.3 * i + 0.7 * j + c) for c in range(3)], axis=-1).astype(np.float32)


PARITY_SIZE = 16
PARITY_HOLE = (4, 12, 5, 13)  # rows 4..11, columns 5..12


def coarse_reference(values: dict[str, np.ndarray]) -> tf.Tensor:
    """Stage 1 of ``build_inpaint_net`` in plain TF ops (padding 'SAME'), fed BGR like the original."""
    rgb = analytic_image(PARITY_SIZE, PARITY_SIZE)
    mask = np.zeros((1, PARITY_SIZE, PARITY_SIZE, 1), np.float32)
    top, bottom, left, right = PARITY_HOLE
    mask[:, top:bottom, left:right] = 1
    x = tf.constant(rgb[None, :, :, ::-1].copy()) * (1.0 - mask)  # batch_incomplete, BGR
    x = tf.concat([x, tf.ones_like(mask), mask], axis=3)
    strides = {"conv2_downsample": 2, "conv4_downsample": 2}
    rates = {"conv7_atrous": 2, "conv8_atrous": 4, "conv9_atrous": 8, "conv10_atrous": 16}
    for scope, *_ in generator_layers(GEN_CNUM)[:17]:
        layer = scope.split("/")[0]
        if layer.endswith("_upsample"):  # neuralgym resize(): nearest, align_corners=True
            h, w = x.shape[1], x.shape[2]
            x = tf.compat.v1.image.resize_nearest_neighbor(x, [2 * h, 2 * w], align_corners=True)
        s, r = strides.get(layer, 1), rates.get(layer, 1)
        x = tf.nn.conv2d(x, values[f"inpaint_net/{scope}/kernel"], [1, s, s, 1], "SAME", dilations=[1, r, r, 1])
        x = x + values[f"inpaint_net/{scope}/bias"]
        if layer != "conv17":
            x = tf.nn.elu(x)
    return tf.clip_by_value(x, -1.0, 1.0)


def critic_reference(values: dict[str, np.ndarray], which: str, size: int) -> tf.Tensor:
    """``build_wgan_{which}_discriminator`` + its dense layer on the analytic image (BGR)."""
    x = tf.constant(analytic_image(size, size)[None, :, :, ::-1].copy())
    for i in range(1, 5):
        x = tf.nn.conv2d(x, values[f"discriminator/discriminator_{which}/conv{i}/kernel"], [1, 2, 2, 1], "SAME")
        x = tf.nn.leaky_relu(x + values[f"discriminator/discriminator_{which}/conv{i}/bias"], 0.2)
    x = tf.reshape(x, [1, -1])  # NHWC flatten
    return tf.matmul(x, values[f"discriminator/dout_{which}_fc/kernel"]) + values[f"discriminator/dout_{which}_fc/bias"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests/fixtures/tf_v1_small")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("snap-*"):
        old.unlink()

    rng = np.random.default_rng(2018)
    values: dict[str, np.ndarray] = {}
    for scope, k, cin, cout in generator_layers(GEN_CNUM):
        values[f"inpaint_net/{scope}/kernel"] = rng.normal(0, 0.2, (k, k, cin, cout)).astype(np.float32)
        values[f"inpaint_net/{scope}/bias"] = rng.normal(0, 0.05, (cout,)).astype(np.float32)
    for name, shape in critic_variables(CRITIC_CNUM).items():
        values[name] = rng.normal(0, 0.1, shape).astype(np.float32)
    # Training-only state a real checkpoint carries; the converter must skip it.
    for slot in ("Adam", "Adam_1"):
        values[f"inpaint_net/conv1/kernel/{slot}"] = rng.normal(0, 0.01, (5, 5, 5, GEN_CNUM)).astype(np.float32)
        values[f"inpaint_net/conv1/bias/{slot}"] = rng.normal(0, 0.01, (GEN_CNUM,)).astype(np.float32)
    values["beta1_power"] = np.float32(0.5 ** 10)
    values["beta2_power"] = np.float32(0.9 ** 10)
    extras = {
        "fixture_extras/half": rng.normal(0, 1, (2, 3)).astype(np.float16),
        "fixture_extras/double": rng.normal(0, 1, (3,)).astype(np.float64),
    }

    tf.compat.v1.disable_eager_execution()
    graph = tf.Graph()
    with graph.as_default():
        for name, value in {**values, **extras}.items():
            tf.compat.v1.Variable(value, name=name)
        tf.compat.v1.Variable(np.array([1.5, -2.25, 3.0], np.float32), dtype=tf.bfloat16, name="fixture_extras/bf16")
        tf.compat.v1.train.create_global_step()
        saver = tf.compat.v1.train.Saver(save_relative_paths=True)
        coarse = coarse_reference(values)
        local_score = critic_reference(values, "local", LOCAL_SIZE)
        global_score = critic_reference(values, "global", GLOBAL_SIZE)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            coarse, local_score, global_score = sess.run([coarse, local_score, global_score])
            sess.run(tf.compat.v1.assign(tf.compat.v1.train.get_global_step(), 10))
            names = sorted(v.op.name for v in tf.compat.v1.global_variables())
            saver.save(sess, str(args.out / "snap"), global_step=10, write_meta_graph=False)

    reader = tf.train.load_checkpoint(str(args.out / "snap-10"))
    saved = reader.get_variable_to_shape_map()
    assert sorted(saved) == names, "saved variable names differ from the graph's"
    for name, value in values.items():
        assert np.array_equal(reader.get_tensor(name), value), name

    def pick(name: str, index: tuple[int, ...]) -> dict:
        return {"name": name, "index": list(index), "value": float(values[name][index])}

    c = GEN_CNUM
    expected = {
        "generator_cnum": c,
        "critic_cnum": CRITIC_CNUM,
        "local_critic_input": LOCAL_SIZE,
        "global_critic_input": GLOBAL_SIZE,
        "tensorflow": tf.__version__,
        "variables": names,
        # Sum of every model tensor: survives transposes and channel permutations.
        "sums": {n: float(v.astype(np.float64).sum()) for n, v in values.items() if "Adam" not in n and "power" not in n},
        "values": [
            pick("inpaint_net/conv1/kernel", (0, 0, 0, 0)),  # blue input channel
            pick("inpaint_net/conv1/kernel", (1, 2, 2, 1)),  # red input channel
            pick("inpaint_net/conv1/kernel", (4, 3, 4, 0)),  # mask channel: unpermuted
            pick("inpaint_net/xconv1/kernel", (2, 2, 0, 1)),
            pick("inpaint_net/pmconv1/kernel", (3, 1, 1, 0)),
            pick("inpaint_net/conv2_downsample/kernel", (0, 1, 1, 3)),
            pick("inpaint_net/conv13_upsample/conv13_upsample_conv/kernel", (2, 1, 5, 3)),
            pick("inpaint_net/conv13_upsample/conv13_upsample_conv/bias", (2,)),
            pick("inpaint_net/allconv15_upsample/allconv15_upsample_conv/kernel", (0, 2, 3, 1)),
            pick("inpaint_net/pmconv10/kernel", (1, 1, 7, 6)),
            pick("inpaint_net/conv17/kernel", (2, 0, 0, 0)),  # blue output
            pick("inpaint_net/conv17/bias", (0,)),
            pick("inpaint_net/conv17/bias", (1,)),
            pick("inpaint_net/conv17/bias", (2,)),
            pick("inpaint_net/allconv17/kernel", (1, 2, 0, 2)),  # red output
            pick("inpaint_net/allconv17/bias", (0,)),
            pick("discriminator/discriminator_local/conv1/kernel", (0, 4, 0, 1)),
            pick("discriminator/discriminator_global/conv3/kernel", (2, 3, 1, 5)),
            pick("discriminator/dout_local_fc/kernel", (17, 0)),
            pick("discriminator/dout_global_fc/bias", (0,)),
        ],
        # TF outputs on analytic_image() (fed as BGR): coarse stage 1 (BGR, [H, W, 3]) and critic scores.
        "parity": {
            "size": PARITY_SIZE,
            "hole": list(PARITY_HOLE),
            "coarse_bgr": np.round(coarse[0].astype(np.float64), 7).tolist(),
            "local_score": float(local_score[0, 0]),
            "global_score": float(global_score[0, 0]),
        },
        "extras": {
            "fixture_extras/half": extras["fixture_extras/half"].astype(float).tolist(),
            "fixture_extras/double": extras["fixture_extras/double"].tolist(),
            "fixture_extras/bf16": [1.5, -2.25, 3.0],
            "global_step": 10,
        },
    }
    (args.out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {len(names)} variables to {args.out} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
