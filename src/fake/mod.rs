//! A faithful fake of the Goofish (Xianyu) service for tests and `demo`: the mtop HTTP API and
//! the IM WebSocket on loopback, speaking the same frames and encodings as the real service.
