//! A real `redis-server` on a random loopback port with a temp dir. (to be written)
