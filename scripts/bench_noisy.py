"""Two ways to compute a factorised noisy linear layer (Fortunato et al. 2018, Eq. 11), timed
side by side in one process: forward and backward at the shapes of the DER and Nature heads.

    python scripts/bench_noisy.py [--threads 1] [--rounds 30] [--iters 20]

* ``outer`` (``NoisyLinear`` today): ``W = mu + sigma * outer(f(eps_out), f(eps_in))``, one matrix
  product ``x @ W^T``;
* ``factorised``: never builds the noise matrix,
  ``x @ mu^T + ((x * f(eps_in)) @ sigma^T) * f(eps_out)``: two matrix products of the same size.

The two alternate, round after round, so that a busy machine slows both alike; the figure is the
best round of each and the ratio outer / factorised (above 1: the factorised form is faster). The
largest relative difference of the outputs shows the change of arithmetic order.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# (batch, in, out): DER's hidden layer (64x3x3 = 576 -> 256), its C51 output (256 -> 18 x 51)
# and value output (256 -> 51); three batches in one forward (obs, next_obs twice); the Nature
# torso's hidden layer (3,136 -> 512).
SHAPES = [(32, 576, 256), (32, 256, 18 * 51), (32, 256, 51), (96, 576, 256), (32, 3136, 512)]


def outer_form(x, mu, sigma, eps_in, eps_out, b_mu, b_sigma):  # type: ignore[no-untyped-def]
    weight = mu + sigma * torch.outer(eps_out, eps_in)
    return F.linear(x, weight, b_mu + b_sigma * eps_out)


def factorised_form(x, mu, sigma, eps_in, eps_out, b_mu, b_sigma):  # type: ignore[no-untyped-def]
    return F.linear(x, mu, b_mu) + F.linear(x * eps_in, sigma) * eps_out + b_sigma * eps_out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--iters", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); ms per forward + backward")
    for batch, n_in, n_out in SHAPES:
        g = torch.Generator().manual_seed(0)
        params = [
            torch.randn(n_out, n_in, generator=g, requires_grad=True),
            torch.randn(n_out, n_in, generator=g, requires_grad=True),
        ]
        eps_in, eps_out = torch.randn(n_in, generator=g), torch.randn(n_out, generator=g)
        biases = [torch.randn(n_out, generator=g, requires_grad=True) for _ in range(2)]
        x = torch.randn(batch, n_in, generator=g, requires_grad=True)
        inputs = (x, params[0], params[1], eps_in, eps_out, biases[0], biases[1])
        a, b = outer_form(*inputs), factorised_form(*inputs)
        diff = float(((a - b).abs().max() / a.abs().max()).detach())
        best = {"outer": float("inf"), "factorised": float("inf")}
        for _ in range(args.rounds):
            for name, fn in (("outer", outer_form), ("factorised", factorised_form)):
                start = time.perf_counter()
                for _ in range(args.iters):
                    fn(*inputs).sum().backward()
                best[name] = min(best[name], (time.perf_counter() - start) / args.iters)
        print(
            f"batch {batch:3d}, {n_in:5d} -> {n_out:4d}: outer {1e3 * best['outer']:.3f}, "
            f"factorised {1e3 * best['factorised']:.3f}, ratio "
            f"{best['outer'] / best['factorised']:.2f}x; outputs differ by {diff:.1e} (relative)"
        )


if __name__ == "__main__":
    main()
