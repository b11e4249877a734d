//! imconn: buffered TeamTalk connections over netlib (filled by the "pdu + imconn" issue).
