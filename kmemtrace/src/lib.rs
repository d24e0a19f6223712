//! Decode, check and report kmemtrace ABI v1 traces.
