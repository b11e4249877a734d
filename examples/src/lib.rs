//! examples: classic servers built on netlib.
