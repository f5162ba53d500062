//! Account lifecycle requests from issuance desks (block, unblock, change of phone).
