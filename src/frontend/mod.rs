//! The client side: the listener (socket options, client limit), the session
//! that reads requests, routes them and writes replies in order, and the
//! commands keyway answers itself.

pub mod listener;
pub mod local;
pub mod replies;
pub mod session;
