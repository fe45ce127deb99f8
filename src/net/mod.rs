//! Sockets: the one [`Stream`] type both sides do their I/O through (client
//! sessions and backend connections alike), plain TCP or TLS, shaped to
//! spend as few system calls as possible per request.

mod stream;
mod tls;

pub use stream::Stream;
pub use tls::HandshakeError;
