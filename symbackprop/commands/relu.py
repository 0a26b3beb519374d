"""`symbackprop relu`: the course's ReLU-net exercise, trained on the generated gradient module."""
from __future__ import annotations

import argparse

from ..cli import split_names
from ..errors import SymbackpropError

HELP = """Train 1 -> width -> 1 ReLU nets on the course notebook's data (a piecewise-linear target
through 11 knots, 200 noisy points) with gradients from the generated module generated/relu_net.py,
and draw the fit with each unit's contribution and elbow, the elbows and slopes over training,
train/test MSE, an animated GIF and a comparison across modes and widths.

modes: all (every layer, lr 0.02), output (output layer only, lr 0.2: random features),
hidden (hidden layer only), ridge (closed form on the initial hidden features, --ridge-lambda).

examples:
  symbackprop relu                                  # the notebook: widths 10,20,40; all, output, ridge
  symbackprop relu --width 20 --mode all --optimizer sgd,momentum,adam --steps 30000
  symbackprop relu --seeds 30 --optimizer sgd,momentum,adam --steps 30000 --out seeds/
  symbackprop relu --target 'abs(x - 0.5)' --width 10 --steps 20000
  symbackprop relu --backend jax --no-plots          # the same steps, jax.jit and lax.scan (needs .[jax])"""


def _ints(text):
    try:
        values = [int(t) for t in split_names([text])]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers, got {text!r}")
    return values


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("relu", help="train the course's ReLU nets on generated gradients and draw them",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=_ints, default=[10, 20, 40], metavar="W[,W]", help="hidden widths (default 10,20,40)")
    p.add_argument("--mode", default="all,output,ridge", metavar="MODE[,MODE]",
                   help="all, output, hidden, ridge (default all,output,ridge)")
    p.add_argument("--optimizer", default="sgd", metavar="OPT[,OPT]", help="sgd, momentum (0.9), adam (default sgd)")
    p.add_argument("--steps", type=int, default=150_000, help="SGD steps per run (default 150000)")
    p.add_argument("--every", type=_positive_int, default=1000, help="snapshot every N steps (default 1000)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: all/hidden 0.02, output 0.2, adam 0.02)")
    p.add_argument("--batch", type=_positive_int, default=40, help="minibatch size, drawn with replacement (default 40)")
    p.add_argument("--ridge-lambda", type=float, default=None, metavar="LAMBDA",
                   help="ridge penalty λ on the output weights (default 1e-7; try 1e-8 to 1e-3)")
    p.add_argument("--backend", default="numpy", choices=("numpy", "jax", "torch"),
                   help="the library that runs the steps: numpy (default), jax (jit-compiled lax.scan; the extra "
                        "`jax`) or torch (the extra `torch`); jax and torch use the array-API module of the same formula")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the initial nets and the minibatches")
    p.add_argument("--seeds", type=_positive_int, default=None, metavar="N",
                   help="train N nets per configuration (seeds SEED..SEED+N-1) as one stacked computation; "
                        "reports the median and quartiles of the test MSE")
    p.add_argument("--target", default="notebook",
                   help="notebook (default), sin, abs, step, or an expression in x such as 'sin(6 * x)'")
    p.add_argument("--out", default="relu_out", metavar="DIR", help="folder for the pictures (default relu_out)")
    p.add_argument("--no-plots", action="store_true", help="train and summarise only")
    p.add_argument("--no-gif", action="store_true", help="skip the animated GIF (the slowest picture)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


def run(args) -> int:
    from ..errors import require_extra
    require_extra("relu", ["matplotlib"] * (not args.no_plots) + ["tqdm"] * (not args.quiet),
                  "`symbackprop relu`" + ("" if args.no_plots or args.quiet else " (pictures and progress bar)"))
    from ..relu import experiment
    from ..relu.train import MODES_ALL, OPTIMIZERS, RIDGE_LAMBDA

    modes = split_names([args.mode])
    optimizers = split_names([args.optimizer])
    for m in modes:
        if m not in MODES_ALL:
            raise SymbackpropError(f"unknown mode {m!r} in --mode {args.mode}", hint="choose from " + ", ".join(MODES_ALL))
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise SymbackpropError(f"unknown optimizer {o!r} in --optimizer {args.optimizer}",
                                   hint="choose from " + ", ".join(OPTIMIZERS))
    if not modes or not optimizers:
        raise SymbackpropError("--mode and --optimizer need at least one name each")
    if args.steps < 0:
        raise SymbackpropError(f"--steps must be 0 or more, got {args.steps}")
    if args.lr is not None and not args.lr > 0:
        raise SymbackpropError(f"--lr must be positive, got {args.lr}")
    lam = RIDGE_LAMBDA if args.ridge_lambda is None else args.ridge_lambda
    if lam < 0:
        raise SymbackpropError(f"--ridge-lambda must be 0 or more, got {lam}")
    from ..relu.problem import target_function
    target_function(args.target)                      # a bad --target fails before any training
    if args.backend != "numpy":
        from ..relu.backends import load
        load(args.backend)                            # a missing library fails before any training
    ex = experiment(args.width, modes, optimizers, steps=args.steps, lr=args.lr, batch=args.batch, every=args.every,
                    seed=args.seed, seeds=args.seeds, target=args.target, ridge_lambda=lam, progress=not args.quiet,
                    backend=args.backend)
    print(ex.summary())
    if not args.no_plots:
        paths = ex.save(args.out, gif=not args.no_gif)
        print(f"pictures: {', '.join(paths)}")
    return 0
