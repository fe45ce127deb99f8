//! The client side: the listener (socket options, client limit), the session
//! that reads requests, routes them and writes replies in order, and the
//! commands keyway answers itself, and each client's subscriptions.

pub mod fanout;
pub mod info;
pub mod listener;
pub mod local;
pub mod replies;
pub mod session;
pub mod subscriptions;
pub mod transaction;
