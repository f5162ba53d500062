//! Account lifecycle by desk application: block, unblock, change of phone.
