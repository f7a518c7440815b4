"""Ensemble summary of segments: the diffusive states of an experiment and their distributions.

Segments that move are clustered by a Gaussian mixture (full covariance, EM, numpy only) on
``(alpha, log10 K)``, each segment weighted by its number of frames; the number of states is the
one with the lowest BIC (``-2 log L + p ln n``, n the number of segments) from 1 to
``max_states``; each segment joins its most probable component. Immobile segments
(alpha = K = 0) form a state of their own.

When the estimation error of each segment is known (``error_var``: variance ``e0 + e1 / n`` of
the network's alpha and log10 K for a segment of n frames, measured in simulation), the mixture
is fitted by *extreme deconvolution* (Bovy, Hogg & Roweis, Ann. Appl. Stat. 5, 1657, 2011): each
segment is a noisy draw ``N(mean_j, V_j + E_i)`` with its own error ``E_i``, so the components'
``V_j`` are the spread of the true values, and every segment also gets its posterior mean (its
estimate pulled towards its state, strongly when it is short, hardly when it is long).

Per state the summary gives the mean and variance of alpha and of K (K in linear units,
px^2/frame^alpha, from the component's log-normal) and its number of frames (responsibility
weighted): the rows of the 2nd AnDi Challenge's ensemble files.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from edgetrack.runtime.errors import InputError

__all__ = ["GaussianMixture", "fit_gmm", "select_gmm", "EnsembleSummary", "ensemble_summary", "guess_model",
           "segment_errors", "confined_votes", "harmonise_states"]

_LOG2PI = float(np.log(2.0 * np.pi))
_LN10 = float(np.log(10.0))
ALPHA_DIRECTED = 1.9


def _inv_logdet(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses and log-determinants of (..., d, d) symmetric matrices (closed form for d = 2)."""
    if m.shape[-1] != 2:
        return np.linalg.inv(m), np.linalg.slogdet(m)[1]
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 1, 1]
    det = a * c - b * b
    inv = np.empty_like(m)
    inv[..., 0, 0], inv[..., 1, 1] = c / det, a / det
    inv[..., 0, 1] = inv[..., 1, 0] = -b / det
    return inv, np.log(det)


def _totals(covs: np.ndarray, errors: np.ndarray | None, n: int) -> np.ndarray:
    """(n, k, d, d) covariances of the observations: V_j + diag(errors_i)."""
    t = np.broadcast_to(covs[None], (n,) + covs.shape).copy()
    if errors is not None:
        d = covs.shape[1]
        t[..., np.arange(d), np.arange(d)] += errors[:, None, :]
    return t


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
    """weights (k,), means (k, d), covs (k, d, d) (the spread of the true values when fitted with
    errors); loglik: weighted log-likelihood of the fit."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    loglik: float

    @property
    def k(self) -> int:
        return int(self.weights.size)

    def n_parameters(self) -> int:
        d = self.means.shape[1]
        return self.k - 1 + self.k * d + self.k * d * (d + 1) // 2

    def log_components(self, x: np.ndarray, errors: np.ndarray | None = None) -> np.ndarray:
        """(n, k) log of weight_j * N(x_i | mean_j, cov_j + diag(errors_i))."""
        return self._log_components(x, errors)[0]

    def _log_components(self, x: np.ndarray, errors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """log_components and the inverses (n, k, d, d) of the observation covariances."""
        n, d = x.shape
        inv, logdet = _inv_logdet(_totals(self.covs, errors, n))
        diff = x[:, None, :] - self.means[None, :, :]
        maha = np.einsum("nki,nkij,nkj->nk", diff, inv, diff)
        return np.log(self.weights)[None, :] - 0.5 * (maha + logdet + d * _LOG2PI), inv

    def responsibilities(self, x: np.ndarray, errors: np.ndarray | None = None) -> np.ndarray:
        lc = self.log_components(x, errors)
        lc -= lc.max(axis=1, keepdims=True)
        r = np.exp(lc)
        return r / r.sum(axis=1, keepdims=True)

    def posterior_means(self, x: np.ndarray, errors: np.ndarray) -> np.ndarray:
        """(n, d) posterior mean of each point's true value given its error variances (n, d)."""
        _, inv = self._log_components(x, errors)
        b, _ = _deconvolve(x, self.means, self.covs, inv)
        return np.einsum("nk,nkd->nd", self.responsibilities(x, errors), b)


def _deconvolve(x: np.ndarray, means: np.ndarray, covs: np.ndarray,
                inv: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per point and component the posterior mean b (n, k, d) and covariance B (n, k, d, d) of the
    true value, given the inverses ``inv`` of the observation covariances (None: no errors)."""
    n = x.shape[0]
    if inv is None:
        return np.broadcast_to(x[:, None, :], (n,) + means.shape), np.zeros((n,) + covs.shape)
    diff = x[:, None, :] - means[None, :, :]
    gain = np.einsum("kij,nkjl->nkil", covs, inv)  # V T^-1
    b = means[None] + np.einsum("nkij,nkj->nki", gain, diff)
    big_b = covs[None] - np.einsum("nkij,kjl->nkil", gain, covs)
    return b, big_b


def _logsumexp(a: np.ndarray) -> np.ndarray:
    m = a.max(axis=1)
    return m + np.log(np.sum(np.exp(a - m[:, None]), axis=1))


def _init_means(x: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with point weights."""
    means = [x[rng.choice(x.shape[0], p=w / w.sum())]]
    for _ in range(1, k):
        d2 = np.min([np.sum((x - m) ** 2, axis=1) for m in means], axis=0) * w
        total = d2.sum()
        idx = rng.choice(x.shape[0], p=d2 / total) if total > 0 else int(rng.integers(x.shape[0]))
        means.append(x[idx])
    return np.array(means)


def fit_gmm(x: np.ndarray, w: np.ndarray | None, k: int, rng: np.random.Generator | int = 0, *,
            errors: np.ndarray | None = None, n_init: int = 2, max_iter: int = 100, tol: float = 1e-4,
            reg: float = 1e-4) -> GaussianMixture:
    """Weighted EM fit of a k-component full-covariance Gaussian mixture to ``x`` (n, d); with
    ``errors`` (n, d) per-point error variances, extreme deconvolution. The best of ``n_init``
    seeded starts; ``reg`` is added to the covariance diagonals."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or not np.all(np.isfinite(x)):
        raise InputError(f"fit_gmm needs a finite (n, d) array, got shape {np.shape(x)}")
    n, d = x.shape
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
        raise InputError("weights must be (n,), >= 0, with a positive sum")
    if errors is not None:
        errors = np.asarray(errors, dtype=np.float64)
        if errors.shape != (n, d) or not np.all(np.isfinite(errors)) or np.any(errors < 0):
            raise InputError(f"errors must be finite variances >= 0 of shape {(n, d)}")
    if not 1 <= k <= n:
        raise InputError(f"k must be in [1, {n}], got {k}")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    eye = np.eye(d) * reg
    best: GaussianMixture | None = None
    for _ in range(max(1, n_init if k > 1 else 1)):
        means = _init_means(x, w, k, gen)
        var = np.cov(x.T, aweights=w).reshape(d, d) + eye if n > 1 else np.eye(d)
        gm = GaussianMixture(np.full(k, 1.0 / k), means, np.repeat(var[None], k, axis=0), -np.inf)
        prev = -np.inf
        for _ in range(max_iter):
            lc, inv = gm._log_components(x, errors)
            ll_i = _logsumexp(lc)
            ll = float(np.sum(w * ll_i))
            r = np.exp(lc - ll_i[:, None]) * w[:, None]
            nk = r.sum(axis=0) + 1e-12
            b, big_b = _deconvolve(x, gm.means, gm.covs, inv if errors is not None else None)
            means = np.einsum("nk,nkd->kd", r, b) / nk[:, None]
            diff = b - means[None]
            covs = (np.einsum("nk,nki,nkj->kij", r, diff, diff) + np.einsum("nk,nkij->kij", r, big_b)) \
                / nk[:, None, None] + eye
            gm = GaussianMixture(nk / nk.sum(), means, covs, ll)
            if abs(ll - prev) <= tol * max(1.0, abs(ll)):
                break
            prev = ll
        ll = float(np.sum(w * _logsumexp(gm.log_components(x, errors))))
        gm = dataclasses.replace(gm, loglik=ll)
        if best is None or gm.loglik > best.loglik:
            best = gm
    return best  # type: ignore[return-value]


def select_gmm(x: np.ndarray, w: np.ndarray | None = None, max_k: int = 4, seed: int = 0,
               min_weight: float = 0.02, errors: np.ndarray | None = None) -> tuple[GaussianMixture, dict[int, float]]:
    """The mixture with the lowest BIC among 1 .. ``max_k`` components (fewer when there are few
    points; a fit with a component below ``min_weight`` of the weight is not considered).
    Weights are normalised to sum to the number of points. Returns (best fit, BIC per k)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    ww = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    ww = ww * (n / ww.sum())
    bics: dict[int, float] = {}
    best, best_bic = None, np.inf
    for k in range(1, max(1, min(int(max_k), n // 3)) + 1):
        gm = fit_gmm(x, ww, k, np.random.default_rng([seed, k]), errors=errors)
        if k > 1 and gm.weights.min() < min_weight:
            continue
        bic = -2.0 * gm.loglik + gm.n_parameters() * np.log(max(n, 2))
        bics[k] = float(bic)
        if bic < best_bic:
            best, best_bic = gm, bic
    return best, bics  # type: ignore[return-value]


def segment_errors(n_frames: np.ndarray, error_var: Mapping) -> np.ndarray:
    """(n, 2) error variances of (alpha, log10 K) of segments of ``n_frames`` frames from a model's
    calibration (``alpha_error_var`` and ``log10_K_error_var``, each ``[e0, e1]``: e0 + e1 / n)."""
    n = np.maximum(np.asarray(n_frames, dtype=np.float64), 1.0)
    cols = []
    for key in ("alpha_error_var", "log10_K_error_var"):
        e0, e1 = (float(v) for v in error_var[key])
        cols.append(e0 + e1 / n)
    return np.column_stack(cols)


@dataclasses.dataclass(frozen=True)
class EnsembleSummary:
    """States of an experiment: ``matrix`` (5, n_states) with rows mean alpha, variance of alpha,
    mean K, variance of K (px^2/frame^alpha) and frames per state; ``immobile`` (n_states,) bool;
    ``labels`` per input segment: its state (column of ``matrix``, -1 for none); ``alpha`` and
    ``K`` per segment: the posterior means with known errors, else the inputs; ``bic`` per k."""

    matrix: np.ndarray
    immobile: np.ndarray
    labels: np.ndarray
    alpha: np.ndarray
    K: np.ndarray
    bic: dict

    @property
    def n_states(self) -> int:
        return int(self.matrix.shape[1])


def ensemble_summary(alpha: np.ndarray, K: np.ndarray, state: np.ndarray, n_frames: np.ndarray,
                     max_states: int = 4, seed: int = 0, error_var: Mapping | None = None) -> EnsembleSummary:
    """Cluster segments (alpha, K px^2/frame^alpha, state code, frames; each (n,)) into states;
    ``error_var``: the model's calibration (see :func:`segment_errors`) for extreme deconvolution
    and posterior means, or None."""
    a, k, s, f = (np.asarray(v, dtype=np.float64).ravel() for v in (alpha, K, state, n_frames))
    if not (a.shape == k.shape == s.shape == f.shape):
        raise InputError("alpha, K, state and n_frames need one value per segment")
    ok = np.isfinite(a) & np.isfinite(k) & (f > 0)
    imm = ok & (s == 0)
    mov = ok & ~imm & (k > 0)
    labels = np.full(a.size, -1, dtype=np.int64)
    post_a, post_k = a.copy(), k.copy()
    bics: dict[int, float] = {}
    cols: list[list[float]] = []
    if mov.any():
        idx = np.flatnonzero(mov)
        x = np.column_stack([a[idx], np.log10(k[idx])])
        err = segment_errors(f[idx], error_var) if error_var else None
        gm, bics = select_gmm(x, f[idx], max_states, seed, errors=err)
        resp = gm.responsibilities(x, err)
        hard = np.argmax(resp, axis=1)
        used = np.unique(hard)
        labels[idx] = np.searchsorted(used, hard)
        if err is not None:
            post = gm.posterior_means(x, err)
            post_a[idx] = np.clip(post[:, 0], 0.0, 1.999)
            post_k[idx] = 10.0 ** post[:, 1]
        for j in used:
            m_log, v_log = gm.means[j, 1] * _LN10, gm.covs[j, 1, 1] * _LN10**2
            mean_k = float(np.exp(m_log + v_log / 2))
            cols.append([float(gm.means[j, 0]), float(gm.covs[j, 0, 0]), mean_k,
                         mean_k**2 * float(np.expm1(v_log)), float(np.sum(resp[:, j] * f[idx]))])
    immobile = [False] * len(cols)
    if imm.any():
        labels[imm] = len(cols)
        cols.append([0.0, 0.0, 0.0, 0.0, float(f[imm].sum())])
        immobile.append(True)
    if not cols:
        raise InputError("no segment with finite alpha and K to summarise")
    return EnsembleSummary(np.array(cols).T, np.array(immobile), labels, post_a, post_k, bics)


def guess_model(summary: EnsembleSummary, segment_states: np.ndarray) -> str:
    """The 2nd AnDi Challenge model name that best fits a summary (for the ensemble file's header):
    immobile_traps when an immobile state exists, confinement when confined segments do,
    single_state for one state, multi_state otherwise."""
    s = np.asarray(segment_states)
    if summary.immobile.any():
        return "immobile_traps"
    if np.any(s == 1):
        return "confinement"
    return "single_state" if summary.n_states == 1 else "multi_state"


def confined_votes(labels: np.ndarray, state: np.ndarray, state_prob: np.ndarray, n_frames: np.ndarray,
                   immobile: np.ndarray, paired: np.ndarray | None = None) -> dict[int, float]:
    """Per moving ensemble state: the frame-weighted share of the confined probability among the
    moving states' probabilities of its segments, ``sum f p_confined / sum f (p_confined +
    p_free + p_directed)`` (segments the network calls immobile left out). ``paired`` (n,): the
    fraction of each segment's frames spent next to another track (a bound pair moves freely
    together, it is not confined), which scales its confined probability by ``1 - paired``."""
    lab = np.asarray(labels, dtype=np.int64)
    st = np.asarray(state, dtype=np.int64)
    p = np.nan_to_num(np.asarray(state_prob, dtype=np.float64))
    f = np.asarray(n_frames, dtype=np.float64)
    free_of_pairs = np.ones(lab.size) if paired is None else 1.0 - np.clip(np.nan_to_num(paired), 0.0, 1.0)
    votes = {}
    for c in np.unique(lab[lab >= 0]):
        sel = (lab == c) & (st != 0)
        if immobile[c] or not sel.any():
            continue
        conf = float(np.sum(f[sel] * p[sel, 1] * free_of_pairs[sel]))
        moving = float(np.sum(f[sel] * (p[sel, 1] + p[sel, 2] + p[sel, 3])))
        votes[int(c)] = conf / moving if moving > 0 else 0.0
    return votes


def harmonise_states(labels: np.ndarray, state: np.ndarray, alpha: np.ndarray, state_prob: np.ndarray,
                     n_frames: np.ndarray, immobile: np.ndarray, threshold: float = 0.5,
                     paired: np.ndarray | None = None) -> np.ndarray:
    """One diffusive state per ensemble state: the segments of each moving ensemble state
    (``labels``, from :func:`ensemble_summary`) become all confined when its
    :func:`confined_votes` share exceeds ``threshold``, and all unconfined otherwise (directed
    when alpha >= 1.9, free below). Immobile and unlabelled segments keep their state.
    Returns the new states (n,) int64."""
    lab = np.asarray(labels, dtype=np.int64)
    st = np.asarray(state, dtype=np.int64).copy()
    a = np.asarray(alpha, dtype=np.float64)
    for c, share in confined_votes(lab, st, state_prob, n_frames, immobile, paired).items():
        sel = (lab == c) & (st != 0)
        st[sel] = 1 if share > threshold else np.where(a[sel] >= ALPHA_DIRECTED, 3, 2)
    return st
