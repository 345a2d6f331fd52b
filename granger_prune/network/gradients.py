"""Mean gradients of the loss over a few minibatches, without side effects (torch)."""

import itertools

import torch


def mean_gradients(model, params, batches, loss_fn, n_batches):
    """``ḡ = (1 / B) Σ_b ∇_θ L(model(x_b), y_b)`` over the first ``n_batches`` of ``batches``.

    The model runs in its current mode (training mode, as the optimizer saw it);
    its buffers (BatchNorm statistics), the parameters' ``.grad`` and torch's
    global random state are left as they were.

    Parameters
    ----------
    model : torch.nn.Module
    params : mapping of str to torch.nn.Parameter
        The parameters whose gradients are returned.
    batches : iterable of (inputs, targets)
    loss_fn : callable(outputs, targets) -> scalar tensor
    n_batches : int >= 1
        Fewer are used when ``batches`` runs out first.

    Returns
    -------
    gradients : dict of str to float64 ndarray
        Shaped like each parameter.
    n_used : int
        The minibatches averaged over.
    """
    names = list(params)
    tensors = [params[n] for n in names]
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    total = [torch.zeros_like(p, dtype=torch.float64) for p in tensors]
    n_used = 0
    devices = [p.device for p in tensors if p.device.type == "cuda"]
    try:
        with torch.random.fork_rng(devices=sorted(set(devices), key=str)):
            for x, y in itertools.islice(batches, n_batches):
                x, y = x.to(tensors[0].device), y.to(tensors[0].device)
                grads = torch.autograd.grad(loss_fn(model(x), y), tensors, allow_unused=True)
                for acc, g in zip(total, grads):
                    if g is not None:
                        acc += g.detach().to(torch.float64)
                n_used += 1
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(buffers[k])
    if n_used == 0:
        raise ValueError("batches yielded no minibatch: the gradient needs at least one")
    return {n: (acc / n_used).cpu().numpy() for n, acc in zip(names, total)}, n_used
