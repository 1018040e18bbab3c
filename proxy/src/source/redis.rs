//! Snapshot distribution through Redis: the writer the controller calls
//! (`publish`) and the follower a proxy runs (`follow`). (to be written)
