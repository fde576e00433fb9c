"""ERC-7857 agent NFTs (issue 16): ``spec/`` holds the proof and key rules, ``contracts`` the typed
contract access, ``oracle/`` the re-encryption oracle, ``client`` the SDK."""
