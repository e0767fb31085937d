"""The GAN object around its step: presets, construction errors, what D sees, and sampling (EMA included)."""
import numpy as np
import pytest

import tinygan as tg
from tinygan.models.gan import GAN, IMAGE, N_CLASSES, PRESETS, Dataset, make_config, mlp

TINY = dict(g_hidden=[6], d_hidden=[5], latent_dim=3)


def test_presets_are_the_documented_designs():
    seed, deep = make_config("seed"), make_config("deep")
    assert (seed["g_hidden"], seed["d_hidden"], seed["act"], seed["g_out"], seed["d_logits"]) == ([128], [128], "relu", "sigmoid", False)
    assert (seed["lr"], seed["beta1"], seed["beta2"], seed["batch_size"], seed["iterations"], seed["latent_dim"]) == (2e-4, 0.5, 0.999, 64, 10000, 100)
    assert (seed["ema"], seed["aux"], seed["smooth"], seed["d_dropout"], seed["data_range"]) == (0.0, 0.0, 1.0, 0.0, "unit")
    assert (deep["g_hidden"], deep["d_hidden"], deep["act"], deep["g_out"], deep["d_logits"]) == ([128, 256, 512, 1024], [512, 256], "leaky", "tanh", True)
    assert (deep["ema"], deep["aux"], deep["iterations"], deep["data_range"], deep["lr"]) == (0.999, 0.3, 20000, "signed", 2e-4)
    assert (seed["preset"], seed["conditional"], seed["seed"]) == ("seed", False, 0)


def test_make_config_overrides_and_errors():
    assert make_config() == make_config("seed")
    c = make_config("deep", lr=1e-3, ema=None, conditional=True)
    assert c["lr"] == 1e-3 and c["ema"] == 0.999 and c["conditional"] and PRESETS["deep"]["lr"] == 2e-4
    with pytest.raises(ValueError, match=r"unknown preset 'big': choose one of \['deep', 'seed'\]"):
        make_config("big")


def test_model_shapes_follow_the_config(be64):
    gan = GAN(make_config("deep", conditional=True, aux=0.0, d_dropout=0.25, **TINY), be64)
    assert repr(gan.G) == "Sequential(Dense(13, 6), LeakyReLU(0.2), Dense(6, 784), Tanh())"
    assert repr(gan.D) == "Sequential(Dense(794, 5), LeakyReLU(0.2), Dropout(0.25), Dense(5, 1))"
    acgan = GAN(make_config("deep", conditional=True, **TINY), be64)
    assert repr(acgan.D) == "Sequential(Dense(784, 5), LeakyReLU(0.2), Dense(5, 11))" and acgan.aux == 0.3
    seed = GAN(make_config("seed", **TINY), be64)
    assert repr(seed.D) == "Sequential(Dense(784, 5), ReLU(), Dense(5, 1), Sigmoid())" and seed.aux == 0.0
    assert repr(seed.G) == "Sequential(Dense(3, 6), ReLU(), Dense(6, 784), Sigmoid())"
    old = make_config("deep", conditional=True, **TINY)
    del old["aux"]  # a configuration saved before the class head existed: D sees the one-hot label
    assert GAN(old, be64).aux == 0.0
    assert seed.ema is None and acgan.ema is not None and np.array_equal(acgan.ema, acgan.G.flat_params)
    assert GAN(make_config("seed", conditional=True, **TINY), be64).aux == 0.0  # seed: D sees the one-hot label
    assert GAN(make_config("deep", aux=0.5, **TINY), be64).aux == 0.0            # no class head unless conditional
    with pytest.raises(ValueError, match=r"^aux > 0 \(AC-GAN\) needs a discriminator that outputs logits \(the deep preset\)$"):
        GAN(make_config("seed", conditional=True, aux=0.3, **TINY), be64)


def test_what_d_sees(be64):
    x, labels = be64.randn(4, IMAGE), be64.xp.asarray([3, 0, 9, 3])
    onehot = GAN(make_config("seed", conditional=True, **TINY), be64)
    seen = be64.to_host(onehot.d_input(x, labels))
    assert seen.shape == (4, IMAGE + N_CLASSES) and np.array_equal(seen[:, :IMAGE], be64.to_host(x))
    assert np.array_equal(seen[:, IMAGE:], np.eye(N_CLASSES)[[3, 0, 9, 3]])
    assert GAN(make_config("deep", conditional=True, **TINY), be64).d_input(x, labels) is x  # AC-GAN: the image only
    plain = GAN(make_config("seed", **TINY), be64)
    assert plain.with_labels(x, labels) is x and plain.d_input(x, None) is x


def test_a_conditional_step_needs_labels(be64):
    gan = GAN(make_config("seed", conditional=True, **TINY), be64)
    with pytest.raises(ValueError, match="^a conditional GAN's step needs the real batch's labels$"):
        gan.step(be64.rand(4, IMAGE))


@pytest.mark.parametrize("preset", ["seed", "deep"])
def test_generate_uses_the_ema_and_maps_to_unit_range(be64, preset):
    gan = GAN(make_config(preset, ema=0.9, **TINY), be64)
    live = gan.G.flat_params.copy()
    gan.ema[...] = live * 0.5  # an average that differs from the live weights
    z = be64.randn(7, 3)
    out = be64.to_host(gan.generate(z))
    assert np.array_equal(gan.G.flat_params, live), "generate puts the live weights back"
    gan.G.flat_params[...] = live * 0.5
    raw = be64.to_host(gan.G.forward(z))
    gan.G.flat_params[...] = live
    want = (raw + 1) / 2 if preset == "deep" else raw
    np.testing.assert_allclose(out, want, rtol=1e-14)
    assert 0 <= out.min() and out.max() <= 1
    again = gan.generate(z)
    assert not np.shares_memory(again, gan.G.layers[-1].buffers["out"]), "the result is a copy, not G's reused buffer"


def test_generate_without_ema_uses_the_live_weights(be64):
    gan = GAN(make_config("seed", **TINY), be64)
    z = be64.randn(5, 3)
    np.testing.assert_allclose(be64.to_host(gan.generate(z)), be64.to_host(gan.G.forward(z)), rtol=0)


def test_sample_draws_noise_in_batches_and_honours_labels(be64):
    gan = GAN(make_config("deep", conditional=True, **TINY), be64)
    gan.be = tg.Backend(be64.name, "float64", seed=7)
    twin = tg.Backend(be64.name, "float64", seed=7)  # the same stream, to redo the draws by hand
    labels = np.array([1, 2, 3, 4, 5])
    images = gan.sample(5, labels=labels, batch=2)
    assert images.shape == (5, 28, 28) and type(images) is np.ndarray
    want = [be64.to_host(gan.generate(twin.randn(len(y), 3), be64.xp.asarray(y))) for y in ([1, 2], [3, 4], [5])]
    np.testing.assert_allclose(images.reshape(5, -1), np.concatenate(want), rtol=1e-14)
    random = gan.sample(3)  # conditional, no labels: random digits
    assert random.shape == (3, 28, 28)
    plain = GAN(make_config("seed", **TINY), be64).sample(4, batch=3)
    assert plain.shape == (4, 28, 28) and 0 <= plain.min() and plain.max() <= 1


def test_dataset_keeps_uint8_and_defaults_to_unit_range():
    be = tg.Backend("numpy", "float32", seed=0)
    data = Dataset(np.full((2, 28, 28), 51, np.uint8), np.array([1, 2]), be)
    assert data.images.dtype == np.uint8 and data.images.shape == (2, IMAGE) and data.labels.dtype == np.int64
    x, _ = data.sample(3)
    assert x.dtype == np.float32 and np.allclose(x, 0.2)


def test_dataset_scales_to_the_preset_range():
    be = tg.Backend("numpy", "float64", seed=0)
    images = np.full((3, 28, 28), 255, np.uint8)
    images[1] = 0
    for data_range, lo, hi in (("unit", 0.0, 1.0), ("signed", -1.0, 1.0)):
        data = Dataset(images, np.array([4, 5, 6]), be, data_range)
        assert len(data) == 3
        x, y = data.sample(50)
        x = be.to_host(x)
        assert set(np.unique(x)) <= {lo, hi} and set(np.unique(x)) == {lo, hi}
        assert np.array_equal(x[:, 0] == hi, np.isin(be.to_host(y), [4, 6]))


def test_layer_reprs_train_eval_and_sync():
    be = tg.Backend("numpy", "float64")
    model = tg.Sequential(tg.Dense(3, 4, be=be), tg.ReLU(), tg.LeakyReLU(0.1), tg.Sigmoid(), tg.Tanh(), tg.Dropout(0.25, be=be))
    assert repr(model) == "Sequential(Dense(3, 4), ReLU(), LeakyReLU(0.1), Sigmoid(), Tanh(), Dropout(0.25))"
    assert model.eval() is model and not any(layer.training for layer in model.layers)
    x = be.randn(2, 4)
    assert model.layers[-1].forward(x) is x, "dropout is off in evaluation"
    assert model.train() is model and all(layer.training for layer in model.layers)
    assert model.train(False) is model and not model.layers[0].training
    assert be.sync() is None
    assert [p.shape for p, _ in model.layers[0].parameters()] == [(3, 4), (4,)]


def test_labels_join_in_the_backend_dtype():
    be = tg.Backend("numpy", "float32", seed=0)
    gan = GAN(make_config("seed", conditional=True, **TINY), be)
    joined = gan.with_labels(be.randn(2, 3), be.xp.asarray([1, 2]))
    assert joined.dtype == np.float32 and joined.shape == (2, 13)
    assert gan.eye.dtype == np.float32, "the one-hot rows are built in the backend dtype, not as float64 temporaries"


def test_mlp_is_built_on_the_backend_it_is_given(be64):
    acts = mlp([IMAGE], "relu", "tanh", be64)  # no Dense layer: only the be argument names the backend
    assert repr(acts) == "Sequential(Tanh())"
    assert acts.be is be64 and acts.flat_params.dtype == be64.dtype
    assert mlp([3, 4, 2], "leaky", None, be64).be is be64


def test_sample_draws_in_batches_of_1000_by_default():
    gan = GAN(make_config("seed", **TINY), tg.Backend("numpy", "float64", seed=0))
    gan.be, twin = tg.Backend("numpy", "float64", seed=9), tg.Backend("numpy", "float64", seed=9)
    images = gan.sample(1003).reshape(1003, -1)
    want = np.concatenate([gan.generate(twin.randn(1000, 3)), gan.generate(twin.randn(3, 3))])
    np.testing.assert_allclose(images, want, rtol=1e-14)


def test_the_seed_generator_still_learns_where_d_is_sure(be64):
    """BCE from D's logit: where D(G(z)) < 1e-7 a clipped BCE would give G exactly zero gradient."""
    gan = GAN(make_config("seed", **TINY), be64)
    gan.D.layers[-2].b[...] = -40.0  # D's logit ~ -40: D(x) and D(G(z)) ~ 4e-18
    before = gan.G.flat_params.copy()
    stats = gan.step(be64.rand(8, IMAGE))
    assert float(stats["d_fake"]) < 1e-7
    assert float(stats["g_loss"]) == pytest.approx(40, abs=1.0), "-log D(G(z)), not a clipped -log(1e-7) = 16.1"
    moved = be64.to_host(abs(gan.G.flat_params - before))
    assert (moved > 0.5 * gan.config["lr"]).mean() > 0.5, "G's Adam step moves its weights by ~lr"


def test_weights_come_from_the_gans_own_backend():
    def weights(seed):
        return GAN(make_config("seed", d_dropout=0.2, **TINY), tg.Backend("numpy", "float64", seed)).G.flat_params
    assert np.array_equal(weights(5), weights(5)) and not np.array_equal(weights(5), weights(6))
    gan = GAN(make_config("seed", d_dropout=0.2, **TINY), tg.Backend("numpy", "float64", 5))
    assert all(layer.be is gan.be for layer in gan.D.layers if hasattr(layer, "be")) and gan.G.be is gan.be
