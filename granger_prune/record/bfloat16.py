"""bfloat16 steps stored as ``uint16`` bit patterns, read back as float32 (torch-free).

bfloat16 is the upper half of a float32: the same 8-bit exponent (so the tiny
raw-scale steps of a trained network, 1e-4 to 1e-10, stay normal numbers) and
8 significant bits (7 stored; a relative rounding error of at most ``2**-8``,
about 0.4 %, on every Δθ, so about 0.8 % on a feature ``(Δθ)²``).  NumPy has no
bfloat16 type, so a file holds the bits as ``uint16`` and any reader decodes
them with NumPy alone::

    bits = np.load("deltas/00-0.weight.npy", mmap_mode="r")         # uint16 (T, size)
    steps = (bits.astype(np.uint32) << 16).view(np.float32)          # exact

Encoding rounds to nearest, ties to even (what ``torch.bfloat16`` does);
NaN stays NaN and values beyond bfloat16's largest finite number become inf.
"""

import numpy as np

DTYPE_NAME = "bfloat16"
#: Bytes of one stored entry.
ITEMSIZE = 2


def to_bfloat16_bits(values):
    """float32 ``values`` (any shape) to bfloat16 bit patterns, ``uint16`` of the same shape."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    bits = values.view(np.uint32)
    # round to nearest even: add 0x7FFF plus the lowest kept bit, then drop 16 bits
    rounded = (bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
    out = rounded.astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():  # a NaN's low payload bits could round it into inf
        out[nan] = np.uint16(0x7FC0)
    return out


def from_bfloat16_bits(bits):
    """bfloat16 bit patterns (``uint16``, any shape) to float32, exactly."""
    bits = np.asarray(bits, dtype=np.uint16)
    out = np.empty(bits.shape, dtype=np.uint32)
    np.left_shift(bits, np.uint32(16), out=out, dtype=np.uint32)  # one pass, no uint32 temporary
    return out.view(np.float32)


class Bfloat16Rows:
    """A read-only float32 view of a ``uint16`` array of bfloat16 steps, decoded on access.

    Indexing (``rows[a:b]``, any NumPy index) decodes only what it selects, so a pass
    that reads a layer a block of rows at a time never holds it whole in float32;
    ``np.asarray(rows)`` decodes everything.

    Parameters
    ----------
    bits : ndarray of uint16, shape (T, size)
        Typically a read-only memory map of the file.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, bits):
        self.bits = bits

    @property
    def shape(self):
        return self.bits.shape

    @property
    def ndim(self):
        return self.bits.ndim

    @property
    def size(self):
        return self.bits.size

    def __len__(self):
        return len(self.bits)

    def __getitem__(self, index):
        return from_bfloat16_bits(self.bits[index])

    def __array__(self, dtype=None, copy=None):
        decoded = from_bfloat16_bits(self.bits)
        return decoded if dtype is None else decoded.astype(dtype, copy=False)

    def __repr__(self):
        return f"Bfloat16Rows(shape={self.shape})"
