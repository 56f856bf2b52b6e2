"""Independent NumPy references the tests compare against."""
import numpy as np


def np_sign(x):
    """+1 where x >= 0, else -1."""
    return np.where(x >= 0, 1.0, -1.0).astype(np.float32)


def conv2d(x, w, stride=(1, 1), pad=(0, 0), dilation=(1, 1), groups=1, pad_value=0.0):
    """Direct 2-D convolution (cross-correlation) in NCHW / OIHW, float64 accumulation."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.full((n, c, h + 2 * pad[0], wd + 2 * pad[1]), pad_value, dtype=np.float64)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    oh = (h + 2 * pad[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        for ky in range(kh):
            for kx in range(kw):
                y0, x0 = ky * dilation[0], kx * dilation[1]
                patch = xs[:, :, y0:y0 + stride[0] * (oh - 1) + 1:stride[0], x0:x0 + stride[1] * (ow - 1) + 1:stride[1]]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch, w[g * og:(g + 1) * og, :, ky, kx])
    return out


def conv2d_gradients(x, w, d_out, pad=(0, 0), pad_value=0.0):
    """The gradients (of x, of w) of ``conv2d(x, w, pad=pad, pad_value=pad_value)`` (stride 1, one group) given
    the output's gradient ``d_out``, float64: the padding's values count in w's gradient, not in x's."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = d_out.shape[2:]
    xp = np.full((n, c, h + 2 * pad[0], wd + 2 * pad[1]), pad_value, dtype=np.float64)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x
    d_xp, d_w = np.zeros_like(xp), np.zeros(w.shape)
    for ky in range(kh):
        for kx in range(kw):
            d_w[:, :, ky, kx] = np.einsum("nohw,nchw->oc", d_out, xp[:, :, ky:ky + oh, kx:kx + ow])
            d_xp[:, :, ky:ky + oh, kx:kx + ow] += np.einsum("nohw,oc->nchw", d_out, w[:, :, ky, kx])
    return d_xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd], d_w


def binary_conv2d(x, w, stride=(1, 1), pad=(0, 0), dilation=(1, 1), groups=1, pad_value=-1.0):
    """Convolution of sign(x), padded with ``pad_value``, with sign(w)."""
    return conv2d(np_sign(x), np_sign(w), stride, pad, dilation, groups, pad_value)


def dorefa_activation(x, bits):
    n = 2 ** bits - 1
    return np.round(np.clip(x, 0, 1) * n) / n


def dorefa_weight(w, bits):
    t = np.tanh(w)
    normalized = t / (2 * np.abs(t).max()) + 0.5
    n = 2 ** bits - 1
    return 2 * (np.round(normalized * n) / n) - 1


def blocks(block):
    """``block`` and every block below it, depth first (Gluon's children)."""
    yield block
    for child in block._children.values():
        yield from blocks(child)
