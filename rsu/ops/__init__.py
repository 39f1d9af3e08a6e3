"""Operations: configuration, daemon lifecycle, metrics, status, logging."""
