"""Operations with perform/revert and the sequence that runs them."""
