//! Loading API Connect YAML and the gateway config into the compiled model (being written).
