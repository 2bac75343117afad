"""GARCH(1,1) kernels: arch's variance recursion, the log-likelihood with its analytic gradient
(Normal and standardised Student's t, optional L2 penalty), a constrained quasi-Newton optimiser,
and the online filter. Conventions follow ``arch`` exactly (docs in ``ml/garch.py``).

Parameter vector: [mu (constant mean only), omega, alpha, beta, nu (Student's t only)].
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel

LOG_2PI = math.log(2.0 * math.pi)
LOG_PI = math.log(math.pi)


def bounds_check_python(sigma2: float, lower: float, upper: float) -> float:
    """arch's ``bounds_check``: clip below, grow only logarithmically above."""
    if sigma2 < lower:
        return lower
    if sigma2 > upper:
        if math.isinf(sigma2):
            return upper + 1000.0
        return upper + math.log(sigma2 / upper)
    return sigma2


bounds_check = kernel(inline="always")(bounds_check_python)


def garch_recursion_python(omega: float, alpha: float, beta: float, resids: np.ndarray,
                           sigma2: np.ndarray, backcast: float, var_bounds: np.ndarray) -> None:
    """σ²_t = ω + α ε²_{t−1} + β σ²_{t−1}, the backcast standing in before t = 0, each value
    passed through ``bounds_check`` — arch's ``garch_recursion`` for p = q = 1, operation for
    operation, so results are bit-identical."""
    for t in range(resids.shape[0]):
        s = omega
        if t == 0:
            s += alpha * backcast
            s += beta * backcast
        else:
            s += alpha * (resids[t - 1] * resids[t - 1])
            s += beta * sigma2[t - 1]
        sigma2[t] = bounds_check(s, var_bounds[t, 0], var_bounds[t, 1])


garch_recursion = kernel()(garch_recursion_python)


def digamma_python(x: float) -> float:
    """ψ(x) for x > 0: recurrence up to x ≥ 6, then the asymptotic series (error < 1e-15)."""
    result = 0.0
    while x < 6.0:
        result -= 1.0 / x
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (
        1.0 / 240 - inv2 * (1.0 / 132)))))
    return result + math.log(x) - 0.5 * inv - series


digamma = kernel(inline="always")(digamma_python)


LOG_BLOCK = 8  # logs of products of 8 positive terms: one log call instead of eight


def garch_objective_python(theta: np.ndarray, y: np.ndarray, has_mu: bool, is_t: bool,
                           backcast: float, var_bounds: np.ndarray, l2n: float,
                           prior_alpha: float, prior_beta: float, sigma2: np.ndarray,
                           grad: np.ndarray, opg: np.ndarray, want_opg: bool) -> float:
    """Negative log-likelihood (+ l2n·Σ(θ−prior)² over α, β when l2n > 0), its gradient into
    ``grad`` and, if ``want_opg``, the outer product of per-observation scores into ``opg``.

    Σ ln σ²_t (and Σ ln(1 + q_t) for t errors) are taken as logs of products of 8 terms: the
    variances are bounded (arch's variance bounds), so the products cannot overflow, and the
    sum changes by ~1e-16 relative while the log calls drop eightfold.
    """
    k = theta.shape[0]
    i = 1 if has_mu else 0
    mu = theta[0] if has_mu else 0.0
    omega, alpha, beta = theta[i], theta[i + 1], theta[i + 2]
    nu = theta[k - 1] if is_t else 4.0
    if want_opg:
        for j in range(k):
            for m in range(k):
                opg[j, m] = 0.0
    score = np.zeros(k)
    if is_t:
        const = (math.lgamma((nu + 1.0) / 2.0) - math.lgamma(nu / 2.0)
                 - math.log(math.pi * (nu - 2.0)) / 2.0)
        dconst = 0.5 * digamma((nu + 1.0) / 2.0) - 0.5 * digamma(nu / 2.0) - 0.5 / (nu - 2.0)
    else:
        const = -0.5 * LOG_2PI
        dconst = 0.0
    half_nu1 = (nu + 1.0) / 2.0
    inv_nu2 = 1.0 / (nu - 2.0)
    d_mu = d_om = d_al = d_be = 0.0
    g_mu = g_om = g_al = g_be = g_nu = 0.0
    quad = 0.0  # Normal: Σ e²/σ²
    w_sum = 0.0  # t: Σ (ν+1)q/(1+q)
    log_s2 = log_q = 0.0
    prod_s2 = prod_q = 1.0
    e_prev = s2_prev = 0.0
    n = y.shape[0]
    for t in range(n):
        e = y[t] - mu
        if t == 0:
            raw = omega
            raw += alpha * backcast
            raw += beta * backcast
            n_mu, n_om, n_al, n_be = 0.0, 1.0, backcast, backcast
        else:
            raw = omega
            raw += alpha * (e_prev * e_prev)
            raw += beta * s2_prev
            n_mu = -2.0 * alpha * e_prev + beta * d_mu
            n_om = 1.0 + beta * d_om
            n_al = e_prev * e_prev + beta * d_al
            n_be = s2_prev + beta * d_be
        lower, upper = var_bounds[t, 0], var_bounds[t, 1]
        if raw < lower:
            s2 = lower
            d_mu = d_om = d_al = d_be = 0.0
        elif raw > upper:
            s2 = bounds_check(raw, lower, upper)
            scale = 1.0 / raw
            d_mu, d_om, d_al, d_be = n_mu * scale, n_om * scale, n_al * scale, n_be * scale
        else:
            s2 = raw
            d_mu, d_om, d_al, d_be = n_mu, n_om, n_al, n_be
        sigma2[t] = s2
        inv_s2 = 1.0 / s2
        ee = e * e
        prod_s2 *= s2
        if is_t:
            q = ee * inv_s2 * inv_nu2
            one_q = 1.0 + q
            prod_q *= one_q
            w = (nu + 1.0) * q / one_q
            w_sum += w
            dl_ds2 = 0.5 * inv_s2 * (w - 1.0)
            dl_de = -(nu + 1.0) * e * inv_s2 * inv_nu2 / one_q
        else:
            quad += ee * inv_s2
            dl_ds2 = 0.5 * inv_s2 * (ee * inv_s2 - 1.0)
            dl_de = -e * inv_s2
        if (t + 1) % LOG_BLOCK == 0 or t == n - 1:
            log_s2 += math.log(prod_s2)
            prod_s2 = 1.0
            if is_t:
                block_q = math.log(prod_q)
                log_q += block_q
                prod_q = 1.0
        # scores of the log-likelihood; the objective's gradient is minus their sum
        s_mu = dl_ds2 * d_mu - dl_de
        s_om = dl_ds2 * d_om
        s_al = dl_ds2 * d_al
        s_be = dl_ds2 * d_be
        g_mu += s_mu
        g_om += s_om
        g_al += s_al
        g_be += s_be
        if want_opg:
            if has_mu:
                score[0] = s_mu
            score[i] = s_om
            score[i + 1] = s_al
            score[i + 2] = s_be
            if is_t:
                score[k - 1] = dconst - 0.5 * math.log1p(q) + 0.5 * w * inv_nu2
            for j in range(k):
                for m in range(k):
                    opg[j, m] += score[j] * score[m]
        e_prev = e
        s2_prev = s2
    if is_t:
        ll = n * const - 0.5 * log_s2 - half_nu1 * log_q
        g_nu = n * dconst - 0.5 * log_q + 0.5 * w_sum * inv_nu2
    else:
        ll = n * const - 0.5 * log_s2 - 0.5 * quad
    if has_mu:
        grad[0] = -g_mu
    grad[i] = -g_om
    grad[i + 1] = -g_al
    grad[i + 2] = -g_be
    if is_t:
        grad[k - 1] = -g_nu
    value = -ll
    if l2n > 0.0:
        da = alpha - prior_alpha
        db = beta - prior_beta
        value += l2n * (da * da + db * db)
        grad[i + 1] += 2.0 * l2n * da
        grad[i + 2] += 2.0 * l2n * db
    return value


garch_objective = kernel()(garch_objective_python)


def garch_filter_python(omega: float, alpha: float, beta: float, mu: float, last_resid: float,
                        last_sigma2: float, returns: np.ndarray, out: np.ndarray) -> None:
    """Conditional variances of new observations, continuing the fitted recursion: out[i] is
    σ² of returns[i], known before it arrives (no variance bounds out of sample)."""
    e = last_resid
    s2 = last_sigma2
    for t in range(returns.shape[0]):
        s2 = omega + alpha * e * e + beta * s2
        out[t] = s2
        e = returns[t] - mu


garch_filter = kernel()(garch_filter_python)


def _direction_python(h: np.ndarray, g: np.ndarray, a: np.ndarray, working: np.ndarray,
                      d: np.ndarray, lam: np.ndarray) -> int:
    """Quasi-Newton step d = H(Aᵀλ − g) that keeps the working constraints (A_W d = 0); λ are
    their multipliers. Returns the working constraint with the most negative multiplier
    (one that should be released), or -1."""
    k = g.shape[0]
    rows = np.flatnonzero(working)
    hg = h @ g
    if rows.shape[0] == 0:
        for j in range(k):
            d[j] = -hg[j]
        return -1
    aw = a[rows]
    m = aw @ h @ aw.T
    lam_w = np.linalg.solve(m, aw @ hg)
    step = h @ (aw.T @ lam_w) - hg
    for j in range(k):
        d[j] = step[j]
    worst, release = -1e-12, -1
    for r in range(rows.shape[0]):
        lam[rows[r]] = lam_w[r]
        if lam_w[r] < worst:
            worst, release = lam_w[r], rows[r]
    return release


_direction = kernel(inline="always")(_direction_python)


def garch_minimize_python(theta: np.ndarray, y: np.ndarray, has_mu: bool, is_t: bool,
                          backcast: float, var_bounds: np.ndarray, l2n: float,
                          prior_alpha: float, prior_beta: float, a: np.ndarray, b: np.ndarray,
                          max_iter: int, info: np.ndarray) -> float:
    """Minimise ``garch_objective`` over {θ : Aθ ≥ b} from a feasible ``theta`` (updated in
    place): BFGS on the analytic gradient, the inverse Hessian started from the inverse outer
    product of scores (BHHH), an active set for the constraints, Armijo backtracking.
    ``info`` receives [iterations, objective evaluations, converged (1/0)]."""
    k = theta.shape[0]
    n_con = a.shape[0]
    sigma2 = np.empty(y.shape[0])
    g = np.empty(k)
    g_new = np.empty(k)
    opg = np.empty((k, k))
    f = garch_objective(theta, y, has_mu, is_t, backcast, var_bounds, l2n, prior_alpha,
                        prior_beta, sigma2, g, opg, True)
    evals = 1
    h = np.linalg.inv(opg + np.eye(k) * 1e-12 * np.trace(opg))
    d = np.empty(k)
    lam = np.zeros(n_con)
    trial = np.empty(k)
    converged = 0
    iteration = 0
    for _ in range(max_iter):
        iteration += 1
        slack = a @ theta - b
        tight = slack <= 1e-10 * (1.0 + np.abs(b))
        working = np.zeros(n_con, dtype=np.bool_)
        for _ in range(2 * n_con + 1):
            release = _direction(h, g, a, working, d, lam)
            if release >= 0:
                working[release] = False
                continue
            ad = a @ d
            worst, add = 0.0, -1
            for c in range(n_con):
                if tight[c] and not working[c] and ad[c] < worst:
                    worst, add = ad[c], c
            if add < 0:
                break
            working[add] = True
        gd = g @ d
        if gd >= 0.0:
            h = np.linalg.inv(opg + np.eye(k) * 1e-12 * np.trace(opg))
            continue
        if -gd <= 1e-12 * (1.0 + abs(f)):
            converged = 1
            break
        ad = a @ d
        t_max = 1.0
        for c in range(n_con):
            if not working[c] and ad[c] < 0.0:
                t_max = min(t_max, max(slack[c], 0.0) / -ad[c])
        t = t_max
        accepted = False
        f_new = f
        for _ in range(60):
            for j in range(k):
                trial[j] = theta[j] + t * d[j]
            f_new = garch_objective(trial, y, has_mu, is_t, backcast, var_bounds, l2n,
                                    prior_alpha, prior_beta, sigma2, g_new, opg, False)
            evals += 1
            if f_new <= f + 1e-4 * t * gd:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            converged = 1 if -gd <= 1e-8 * (1.0 + abs(f)) else 0
            break
        s = trial - theta
        yv = g_new - g
        sy = s @ yv
        if sy > 1e-12 * np.sqrt((s @ s) * (yv @ yv)):
            rho = 1.0 / sy
            hy = h @ yv
            yhy = yv @ hy
            for r in range(k):
                for c in range(k):
                    h[r, c] += ((rho * rho * yhy + rho) * s[r] * s[c]
                                - rho * (hy[r] * s[c] + s[r] * hy[c]))
        small = abs(f - f_new) <= 1e-15 * abs(f)
        for j in range(k):
            theta[j] = trial[j]
            g[j] = g_new[j]
        f = f_new
        if small and -gd <= 1e-9 * (1.0 + abs(f)):
            converged = 1
            break
    info[0] = iteration
    info[1] = evals
    info[2] = converged
    return f


garch_minimize = kernel()(garch_minimize_python)


GRID_ALPHAS = (0.01, 0.05, 0.1, 0.2)
GRID_PERSISTENCE = (0.5, 0.7, 0.9, 0.98)


def garch_grid_python(resid: np.ndarray, backcast: float, var_bounds: np.ndarray,
                      target: float, out: np.ndarray) -> None:
    """Gaussian log-likelihood at arch's 16 starting points (α-major, persistence-minor):
    ω = (1 − p)·target, α, β = p − α; the 16 recursions run side by side in one pass."""
    omega = np.empty(16)
    alpha = np.empty(16)
    beta = np.empty(16)
    s2 = np.empty(16)
    prod = np.ones(16)
    log_s2 = np.zeros(16)
    quad = np.zeros(16)
    i = 0
    for a in GRID_ALPHAS:
        for p in GRID_PERSISTENCE:
            omega[i], alpha[i], beta[i] = (1.0 - p) * target, a, p - a
            i += 1
    n = resid.shape[0]
    for t in range(n):
        lower, upper = var_bounds[t, 0], var_bounds[t, 1]
        x = backcast if t == 0 else resid[t - 1] * resid[t - 1]
        ee = resid[t] * resid[t]
        flush = (t + 1) % LOG_BLOCK == 0 or t == n - 1
        for g in range(16):
            raw = omega[g]
            raw += alpha[g] * x
            raw += beta[g] * (backcast if t == 0 else s2[g])
            v = bounds_check(raw, lower, upper)
            s2[g] = v
            quad[g] += ee / v
            prod[g] *= v
            if flush:
                log_s2[g] += math.log(prod[g])
                prod[g] = 1.0
    for g in range(16):
        out[g] = -0.5 * (n * LOG_2PI + log_s2[g] + quad[g])


garch_grid = kernel()(garch_grid_python)
