"""Task builders for resistive networks: networks plus train/test data (nothing is downloaded).

Every builder returns a `Task`: ``problem`` (a `ResistiveProblem`), ``params`` (the initial
conductances, ``problem.params()``), ``train`` and ``test`` as ``(inputs, targets)`` arrays
with a leading example axis, and, for classification, ``labels = (train, test)`` integer
class labels for ``problem.accuracy``. Signed inputs are encoded as voltage pairs
``(+a·x, −a·x)`` on two input nodes, so that a network of positive conductances can realise
signed weights; outputs read as voltage differences of node pairs are signed too.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .learning import ResistiveProblem
from .network import ResistiveError, ResistiveNetwork
from .solver import DCSolver


class Task(NamedTuple):
    """A built task: ``problem``, initial ``params``, ``train``/``test`` as ``(inputs, targets)``
    with a leading example axis, and ``labels = (train, test)`` for classification (else
    ``None``)."""

    problem: ResistiveProblem
    params: dict
    train: tuple
    test: tuple
    labels: tuple | None = None


def random_edges(n_nodes: int, n_edges: int, rng: np.random.Generator) -> np.ndarray:
    """A connected random multigraph: a random recursive tree plus uniform random edges."""
    if n_edges < n_nodes - 1:
        raise ResistiveError(
            f"n_edges={n_edges} is too few to connect n_nodes={n_nodes} (need ≥ n_nodes − 1)"
        )
    child = np.arange(1, n_nodes)
    tree = np.stack([child, (rng.random(n_nodes - 1) * child).astype(np.int64)], 1)
    m = n_edges - len(tree)
    a = rng.integers(0, n_nodes, m)
    b = (a + rng.integers(1, n_nodes, m)) % n_nodes  # never a self-loop
    return np.concatenate([tree, np.stack([a, b], 1)])


def random_network(
    n_nodes: int,
    n_edges: int,
    *,
    n_inputs: int = 2,
    seed: int = 0,
    g_range: tuple[float, float] = (0.5, 1.5),
) -> ResistiveNetwork:
    """A connected random linear network; inputs are nodes ``1 … n_inputs``.

    Conductances are uniform in ``g_range`` (siemens).
    """
    rng = np.random.default_rng(seed)
    edges = random_edges(n_nodes, n_edges, rng)
    g = rng.uniform(*g_range, len(edges))
    return ResistiveNetwork(n_nodes, edges, g, inputs=np.arange(1, n_inputs + 1))


def allostery(
    n_nodes: int = 64,
    n_edges: int = 192,
    n_pairs: int = 2,
    *,
    seed: int = 0,
    target_range: float = 0.3,
    solver: DCSolver = DCSolver(),
) -> Task:
    """Allosteric task (Rocks et al. 2017, electrical version): one input, targets at pairs.

    Nodes 1 and 2 are held at +1 V and −1 V; ``n_pairs`` random disjoint pairs of free nodes
    are outputs, each with a target voltage difference uniform in ``±target_range`` V. One
    example; ``test`` equals ``train``.
    """
    rng = np.random.default_rng(seed)
    net = random_network(n_nodes, n_edges, n_inputs=2, seed=seed)
    if 2 * n_pairs > n_nodes - 3:
        raise ResistiveError(f"n_pairs={n_pairs} needs at least {2 * n_pairs + 3} nodes")
    nodes = rng.choice(np.arange(3, n_nodes), 2 * n_pairs, replace=False)
    pairs = [(int(nodes[2 * k]), int(nodes[2 * k + 1])) for k in range(n_pairs)]
    problem = ResistiveProblem(net, pairs, solver=solver)
    u = jnp.asarray([[1.0, -1.0]])
    t = jnp.asarray(rng.uniform(-target_range, target_range, (1, n_pairs)))
    return Task(problem, problem.params(), (u, t), (u, t))


def _pairs(x, amplitude):
    """Encode features ``x (n, d)`` as input voltages ``(n, 2d + 2)``: ±a·x and a ±a bias."""
    x = np.asarray(x, float)
    ones = np.ones((len(x), 1))
    return jnp.asarray(amplitude * np.concatenate([x, -x, ones, -ones], axis=1))


def _split(n: int, test_fraction: float, rng):
    order = rng.permutation(n)
    n_test = int(round(test_fraction * n))
    return order[n_test:], order[:n_test]


def layered_network(
    n_inputs: int,
    hidden: tuple[int, ...],
    n_output_pairs: int,
    *,
    diodes: bool = False,
    is_: float = 1e-14,
    n: float = 1.0,
    seed: int = 0,
    g_range: tuple[float, float] = (0.5, 1.5),
) -> tuple[ResistiveNetwork, list[tuple[int, int]]]:
    """Layers of nodes joined all-to-all by resistors (crossbars), Kendall et al. 2020 style.

    Node 0 is ground; input nodes ``1 … n_inputs``; then each hidden layer; then the
    ``2·n_output_pairs`` output nodes, read as pairs ``(plus, minus)``. With ``diodes=True``
    every hidden node has two antiparallel diodes to ground (``IS = is_``, ``N = n``), a
    saturating nonlinearity at about ±0.6 V (a simplification of Kendall's diodes to bias
    sources, without amplifiers). Returns ``(network, output_pairs)``.
    """
    rng = np.random.default_rng(seed)
    sizes = [n_inputs, *hidden, 2 * n_output_pairs]
    starts = np.cumsum([1] + sizes)
    layers = [np.arange(starts[k], starts[k + 1]) for k in range(len(sizes))]
    edges = np.concatenate(
        [
            np.stack(np.meshgrid(a, b, indexing="ij"), -1).reshape(-1, 2)
            for a, b in zip(layers, layers[1:])
        ]
    )
    hid = np.concatenate(layers[1:-1]) if hidden else np.zeros(0, np.int64)
    d = None
    if diodes:
        if not hidden:
            raise ResistiveError("diodes=True needs at least one hidden layer")
        d = np.concatenate([np.stack([hid, 0 * hid], 1), np.stack([0 * hid, hid], 1)])
    g = rng.uniform(*g_range, len(edges))
    net = ResistiveNetwork(int(starts[-1]), edges, g, inputs=layers[0], diodes=d, is_=is_, n=n)
    out = layers[-1]
    return net, [(int(out[2 * k]), int(out[2 * k + 1])) for k in range(n_output_pairs)]


def linear_regression(
    n_features: int = 3,
    n_targets: int = 2,
    *,
    n_hidden: int = 32,
    n_edges: int | None = None,
    n_train: int = 64,
    n_test: int = 64,
    weight_scale: float = 0.1,
    seed: int = 0,
    solver: DCSolver = DCSolver(),
) -> Task:
    """Learn a linear map ``y = W x`` with a random linear network.

    ``x`` uniform in ``[−1, 1]^d`` enters as ``2d`` input nodes at ``±x``; ``W`` has entries
    uniform in ``±weight_scale``; each target is read across a pair of output nodes. The
    ``n_hidden`` hidden and ``2·n_targets`` output nodes are joined to each other and to the
    inputs by a random connected graph with ``n_edges`` resistors (default 4 per node).
    """
    rng = np.random.default_rng(seed)
    n_in = 2 * n_features
    n_nodes = 1 + n_in + n_hidden + 2 * n_targets
    n_edges = 4 * n_nodes if n_edges is None else n_edges
    edges = random_edges(n_nodes, n_edges, rng)
    net = ResistiveNetwork(
        n_nodes, edges, rng.uniform(0.5, 1.5, len(edges)), inputs=np.arange(1, n_in + 1)
    )
    out = np.arange(n_nodes - 2 * n_targets, n_nodes)
    problem = ResistiveProblem(
        net, [(int(out[2 * k]), int(out[2 * k + 1])) for k in range(n_targets)], solver=solver
    )
    w = rng.uniform(-weight_scale, weight_scale, (n_targets, n_features))

    def data(n):
        x = rng.uniform(-1, 1, (n, n_features))
        return jnp.asarray(np.concatenate([x, -x], 1)), jnp.asarray(x @ w.T)

    return Task(problem, problem.params(), data(n_train), data(n_test))


def _classification(
    x, labels, n_classes, *, hidden, diodes, amplitude, target, test_fraction, seed, solver, **kw
) -> Task:
    rng = np.random.default_rng(seed)
    tr, te = _split(len(x), test_fraction, rng)
    mean, std = x[tr].mean(0), x[tr].std(0)
    z = (x - mean) / np.where(std > 0, std, 1.0)
    u = _pairs(z, amplitude)
    net, pairs = layered_network(u.shape[1], hidden, n_classes, diodes=diodes, seed=seed, **kw)
    problem = ResistiveProblem(net, pairs, solver=solver)
    onehot = np.eye(n_classes)[labels]
    t = jnp.asarray(target * (2 * onehot - 1))
    lab = jnp.asarray(labels)
    return Task(problem, problem.params(), (u[tr], t[tr]), (u[te], t[te]), (lab[tr], lab[te]))


def iris(
    *,
    hidden: tuple[int, ...] = (),
    amplitude: float = 1.0,
    target: float = 0.1,
    test_fraction: float = 0.3,
    seed: int = 0,
    solver: DCSolver = DCSolver(),
) -> Task:
    """Iris (scikit-learn's bundled copy) with a linear resistive network.

    The 4 standardised features enter as ± voltage pairs (``amplitude`` V per unit) plus a
    ±``amplitude`` bias pair (10 input nodes). One output pair per class; its target is
    ``+target`` V for the example's class and ``−target`` V otherwise; the prediction is the
    class whose pair reads the largest difference (``problem.accuracy``). The layers are
    joined all-to-all (a crossbar when ``hidden=()``).
    """
    from sklearn.datasets import load_iris

    data = load_iris()
    return _classification(
        data.data,
        data.target,
        3,
        hidden=hidden,
        diodes=False,
        amplitude=amplitude,
        target=target,
        test_fraction=test_fraction,
        seed=seed,
        solver=solver,
    )


def diode_classifier(
    dataset: str = "iris",
    *,
    hidden: tuple[int, ...] = (32,),
    amplitude: float = 2.0,
    target: float = 0.1,
    test_fraction: float = 0.3,
    is_: float = 1e-14,
    seed: int = 0,
    solver: DCSolver = DCSolver(),
) -> Task:
    """Layered diode network for DC classification (Kendall et al. 2020 style).

    ``dataset`` is ``"iris"`` or ``"digits"`` (scikit-learn's bundled 8×8 digits, 64
    features). Features are standardised, enter as ± voltage pairs (``amplitude`` V per unit,
    plus a bias pair); hidden nodes carry antiparallel diodes to ground; one output pair per
    class, read as a voltage difference, target ``±target`` V as in `iris`.
    """
    from sklearn.datasets import load_digits, load_iris

    loaders = {"iris": (load_iris, 3), "digits": (load_digits, 10)}
    if dataset not in loaders:
        raise ResistiveError(f"dataset={dataset!r}; use 'iris' or 'digits'")
    load, k = loaders[dataset]
    data = load()
    return _classification(
        data.data,
        data.target,
        k,
        hidden=hidden,
        diodes=True,
        amplitude=amplitude,
        target=target,
        test_fraction=test_fraction,
        seed=seed,
        solver=solver,
        is_=is_,
    )


__all__ = [
    "Task",
    "allostery",
    "diode_classifier",
    "iris",
    "layered_network",
    "linear_regression",
    "random_edges",
    "random_network",
]
