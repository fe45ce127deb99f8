//! Figures of events that happen on every request, too frequent for the
//! metrics recorder: each worker keeps its own (one writer, plain adds),
//! and `INFO` or a scrape of `/metrics` sums the workers'.

pub mod commands;
pub mod reads;
