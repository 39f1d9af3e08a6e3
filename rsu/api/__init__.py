"""Application interfaces: IS_Triggering (trigger / update / terminate) and IS_DataProviding (received messages)."""
