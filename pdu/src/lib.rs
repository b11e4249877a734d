//! pdu: the TeamTalk frame (filled by the "pdu + imconn" issue).
