//! Sockets: the one [`Stream`] type both sides do their I/O through (client
//! sessions and backend connections alike), shaped to spend as few system
//! calls as possible per request.

mod stream;

pub use stream::Stream;
