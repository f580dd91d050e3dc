"""vae_core.gradvar: the three gradient estimators on a model solved in closed form, then on
a real (tiny) VAE."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from numpy.polynomial import polynomial as P
from torch import nn

from vae_core.gradvar import ESTIMATORS, gradient_variance
from vae_core.models import VAE

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class LinearGaussianToy(nn.Module):
    """q(z|x) = N(w x + m, exp(l)), p(z) = N(0, 1), p(x|z) = N(x; z, 1), x and z scalars.

    Every single-sample gradient estimate is a polynomial in eps ~ N(0, 1), so its mean and
    variance follow exactly from the Gaussian moments E[eps^k] = (k - 1)!! (k even).
    """

    def __init__(self, w: float, m: float, logvar: float) -> None:
        super().__init__()
        self.config = SimpleNamespace(likelihood="gaussian")
        self.encoder = nn.Module()
        self.encoder.w = nn.Parameter(torch.tensor(w, dtype=torch.float64))
        self.encoder.m = nn.Parameter(torch.tensor(m, dtype=torch.float64))
        self.encoder.l = nn.Parameter(torch.tensor(logvar, dtype=torch.float64))
        self.register_buffer("log_scale", torch.zeros((), dtype=torch.float64))  # sigma_x = 1

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.encoder.w * x.flatten(1) + self.encoder.m  # (B, 1)
        return mu, self.encoder.l.expand_as(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, 1, 1, 1)  # the mean of p(x|z) is z itself


def _gaussian_moment(k: int) -> float:
    return 0.0 if k % 2 else float(np.prod(np.arange(k - 1, 0, -2)))  # (k - 1)!!


def _mean(poly: np.ndarray) -> float:
    return sum(c * _gaussian_moment(k) for k, c in enumerate(poly))


def _var(poly: np.ndarray) -> float:
    return _mean(P.polymul(poly, poly)) - _mean(poly) ** 2


def _exact(toy: LinearGaussianToy, xs: np.ndarray, samples: int) -> dict[str, tuple]:
    """Per estimator: (mean, variance) of the (w, m, l) gradient of the batch-mean ELBO."""
    w, m, logvar = (p.item() for p in (toy.encoder.w, toy.encoder.m, toy.encoder.l))
    sigma = math.exp(logvar / 2)
    means = {name: np.zeros(3) for name in ESTIMATORS}
    variances = {name: np.zeros(3) for name in ESTIMATORS}
    for x in xs:
        mu = w * x + m
        d = x - mu
        # f(eps) = log p(x | mu + sigma eps) = -(d - sigma eps)^2 / 2 - log(2 pi) / 2
        f = np.array([-(d**2) / 2 - HALF_LOG_2PI, d * sigma, -(sigma**2) / 2])
        f_centred = f - np.array([_mean(f), 0, 0])
        # Analytic KL = (mu^2 + sigma^2 - 1 - l) / 2: d/dmu = mu, d/dl = (sigma^2 - 1) / 2.
        kl_mu, kl_l = np.array([mu]), np.array([(sigma**2 - 1) / 2])
        score_mu, score_l = np.array([0, 1 / sigma]), np.array([-0.5, 0, 0.5])  # grad log q
        per_estimator = {
            # reparam: df/dz (dz/dmu = 1, dz/dl = sigma eps / 2) with df/dz = d - sigma eps
            "reparam": (np.array([d, -sigma]), P.polymul([d, -sigma], [0, sigma / 2])),
            "score": (P.polymul(f, score_mu), P.polymul(f, score_l)),
            "score_baseline": (P.polymul(f_centred, score_mu), P.polymul(f_centred, score_l)),
        }
        for name, (g_mu, g_l) in per_estimator.items():
            g_mu, g_l = P.polysub(g_mu, kl_mu), P.polysub(g_l, kl_l)
            means[name] += np.array([x * _mean(g_mu), _mean(g_mu), _mean(g_l)]) / len(xs)
            var = np.array([x**2 * _var(g_mu), _var(g_mu), _var(g_l)])
            if name == "score_baseline":
                # The leave-one-out baseline b is a mean of S - 1 other draws of f, independent
                # of eps: it adds Var(f) / (S - 1) * E[(grad log q)^2].
                noise = _var(f) / (samples - 1)
                sq_mu, sq_l = (
                    _mean(P.polymul(score_mu, score_mu)),
                    _mean(P.polymul(score_l, score_l)),
                )
                var += noise * np.array([x**2 * sq_mu, sq_mu, sq_l])
            variances[name] += var / len(xs) ** 2  # independent eps per image
    return {name: (means[name], variances[name]) for name in ESTIMATORS}


def _true_gradient(toy: LinearGaussianToy, xs: np.ndarray) -> np.ndarray:
    """grad of the closed-form batch-mean ELBO, E_q[log p(x|z)] = -(d^2 + sigma^2)/2 - c."""
    toy.zero_grad()
    x = torch.tensor(xs, dtype=torch.float64)
    mu = toy.encoder.w * x + toy.encoder.m
    var = toy.encoder.l.exp()
    expected_ll = -((x - mu) ** 2 + var) / 2 - HALF_LOG_2PI
    kl = (mu**2 + var - 1 - toy.encoder.l) / 2
    (expected_ll - kl).mean().backward()
    grad = np.array([float(p.grad) for p in (toy.encoder.w, toy.encoder.m, toy.encoder.l)])
    toy.zero_grad(set_to_none=True)
    return grad


@pytest.fixture(scope="module")
def toy_result():
    torch.manual_seed(0)
    toy = LinearGaussianToy(w=0.5, m=0.2, logvar=math.log(0.3**2))
    xs = np.linspace(-2.0, 2.0, 64)
    x = torch.tensor(xs, dtype=torch.float64).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    samples = 2000
    return toy, xs, samples, gradient_variance(toy, x, samples=samples, seed=1)


def test_every_estimator_is_unbiased_on_the_linear_gaussian_toy(toy_result) -> None:
    toy, xs, samples, result = toy_result
    truth = _true_gradient(toy, xs)
    exact = _exact(toy, xs, samples)
    for name in ESTIMATORS:
        np.testing.assert_allclose(exact[name][0], truth, atol=1e-12)  # the algebra agrees
        measured = result.stats[name].mean.numpy()
        standard_error = np.sqrt(exact[name][1] / samples)
        assert np.all(np.abs(measured - truth) < 4 * standard_error + 1e-12), name


def test_measured_variances_match_the_closed_form(toy_result) -> None:
    toy, xs, samples, result = toy_result
    exact = _exact(toy, xs, samples)
    for name in ESTIMATORS:
        # S = 2000 estimates of a batch of 64: the sample variance's own relative spread is
        # 3-6 % here (measured over 200 simulated replications), so 20 % is about 3.5 sd.
        measured = result.stats[name].variance.numpy()
        np.testing.assert_allclose(measured, exact[name][1], rtol=0.2, err_msg=name)
    # reparam: Var[d/dm] = sigma^2 / B exactly, whatever x is
    assert exact["reparam"][1][1] == pytest.approx(0.3**2 / len(xs))


def test_reparameterisation_has_the_lowest_variance_and_the_baseline_helps(toy_result) -> None:
    _, _, _, result = toy_result
    summary = result.summary()
    assert summary["var_reparam"] < summary["var_score_baseline"] < summary["var_score"]
    assert summary["ratio_score"] == pytest.approx(summary["var_score"] / summary["var_reparam"])
    assert summary["ratio_score"] > 10 and summary["encoder_params"] == 3
    assert summary["samples"] == 2000 and summary["batch_size"] == 64


def test_a_real_vae_gives_finite_ordered_variances_and_is_left_untouched(
    tiny_model_config, tiny_batch
) -> None:
    model = VAE(tiny_model_config).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = gradient_variance(model, tiny_batch, samples=20, seed=3)
    summary = result.summary()
    n_params = sum(p.numel() for p in model.encoder.parameters())
    assert summary["encoder_params"] == n_params
    assert all(math.isfinite(summary[f"var_{name}"]) for name in ESTIMATORS)
    assert 0 < summary["var_reparam"] < summary["var_score"]
    assert summary["ratio_score"] > 1
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    again = gradient_variance(model, tiny_batch, samples=20, seed=3).summary()
    assert again == summary  # the seed fixes every draw


def test_fewer_than_two_samples_is_refused(tiny_model_config, tiny_batch) -> None:
    with pytest.raises(ValueError, match="samples must be >= 2"):
        gradient_variance(VAE(tiny_model_config), tiny_batch, samples=1)
