//! servers: login_server and msg_server (filled by the servers issue).
