// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS12381} from "./BLS12381.sol";

/// @title DASigners: the registry of data-availability signers, their stake and epochs.
/// @notice A signer registers a BLS12-381 public key (G1) with a proof of possession and a stake
/// deposit. Time is cut into epochs of `epochBlocks` blocks. Membership and stake only change at
/// epoch boundaries: a registration takes effect next epoch, an exit too, so every epoch's
/// quorum (its active signers) is fixed and can be read back at any time. Each epoch's 128 cell
/// columns are dealt out in proportion to stake (largest remainder) and shuffled with a seed
/// derived from the epoch (`getQuorumPage` + `assignColumns`); zgos/da/assignment.py states the
/// same rule in Python. Views that walk the signer list are paged: the list only grows.
/// One quorum per epoch (quorum id 0), of at most `MAX_ACTIVE_SIGNERS` signers.
contract DASigners {
    uint256 public constant COLUMNS = 128;
    uint256 public constant MAX_ACTIVE_SIGNERS = 128;
    uint256 public constant MAX_URL_BYTES = 256;
    uint256 public constant MAX_PAGE = 256; // signers read per getQuorumPage call
    uint64 public constant QUORUM_ID = 0;

    uint256 public immutable epochBlocks;
    uint256 public immutable genesisBlock;
    uint256 public immutable minStake;
    uint256 public immutable exitDelayEpochs;

    struct Signer {
        bytes pubkey; // EIP-2537 G1 encoding, 128 bytes
        bytes pubkeyCompressed; // 48 bytes, as blspy / py_ecc print it
        string url;
        uint256 stake;
        uint64 activeFrom; // first epoch in the quorum
        uint64 activeUntil; // first epoch no longer in the quorum (max = open-ended)
        bool withdrawn;
    }

    struct Checkpoint {
        uint64 epoch;
        uint64 count;
        uint256 totalStake;
    }

    mapping(address => Signer) private signers;
    address[] private signerList;
    mapping(bytes32 => address) public keyOwner;
    Checkpoint[] private checkpoints;

    event SignerRegistered(address indexed signer, bytes pubkey, string url, uint256 stake, uint64 activeFrom);
    event SignerUrlUpdated(address indexed signer, string url);
    event SignerExited(address indexed signer, uint64 activeUntil);
    event StakeWithdrawn(address indexed signer, uint256 amount);

    error AlreadyRegistered(address signer);
    error NotRegistered(address signer);
    error StakeTooLow(uint256 sent, uint256 minimum);
    error InvalidUrl();
    error InvalidPublicKey();
    error KeyAlreadyUsed(address owner);
    error InvalidProofOfPossession();
    error TooManySigners(uint256 maximum);
    error AlreadyExited(address signer);
    error StakeLocked(uint64 untilEpoch);
    error NotSortedOrDuplicate(address signer);
    error NotInQuorum(address signer, uint64 epoch);
    error TransferFailed();

    constructor(uint256 epochBlocks_, uint256 minStake_, uint256 exitDelayEpochs_) {
        require(epochBlocks_ > 0, "epochBlocks must be positive");
        epochBlocks = epochBlocks_;
        minStake = minStake_;
        exitDelayEpochs = exitDelayEpochs_;
        genesisBlock = block.number;
    }

    // --- epochs -----------------------------------------------------------------------

    function currentEpoch() public view returns (uint64) {
        return uint64((block.number - genesisBlock) / epochBlocks);
    }

    /// @notice First block of `epoch`.
    function epochStartBlock(uint64 epoch) external view returns (uint256) {
        return genesisBlock + uint256(epoch) * epochBlocks;
    }

    // --- registration -----------------------------------------------------------------

    /// @notice Register the caller with a BLS public key (uncompressed EIP-2537 G1 and its 48-byte
    /// compressed form), a proof of possession (the PoP-ciphersuite signature of the compressed
    /// key, 256-byte G2) and a stake deposit (msg.value). Active from the next epoch.
    function register(bytes calldata pubkey, bytes calldata pubkeyCompressed, bytes calldata pop, string calldata url)
        external
        payable
    {
        if (signers[msg.sender].pubkey.length != 0) revert AlreadyRegistered(msg.sender);
        if (msg.value < minStake || msg.value == 0) revert StakeTooLow(msg.value, minStake);
        _checkUrl(url);
        if (!BLS12381.matchesCompressed(pubkey, pubkeyCompressed) || BLS12381.isInfinity(pubkey)) {
            revert InvalidPublicKey();
        }
        bytes32 keyHash = keccak256(pubkeyCompressed);
        if (keyOwner[keyHash] != address(0)) revert KeyAlreadyUsed(keyOwner[keyHash]);
        if (pop.length != BLS12381.G2_BYTES || !BLS12381.verify(pubkey, pubkeyCompressed, pop, BLS12381.POP_DST)) {
            revert InvalidProofOfPossession();
        }
        uint64 activeFrom = currentEpoch() + 1;
        Checkpoint memory next = _nextCheckpoint();
        if (next.count + 1 > MAX_ACTIVE_SIGNERS) revert TooManySigners(MAX_ACTIVE_SIGNERS);
        _writeNextCheckpoint(next.count + 1, next.totalStake + msg.value);
        keyOwner[keyHash] = msg.sender;
        signers[msg.sender] = Signer(pubkey, pubkeyCompressed, url, msg.value, activeFrom, type(uint64).max, false);
        signerList.push(msg.sender);
        emit SignerRegistered(msg.sender, pubkeyCompressed, url, msg.value, activeFrom);
    }

    function updateUrl(string calldata url) external {
        if (signers[msg.sender].pubkey.length == 0) revert NotRegistered(msg.sender);
        _checkUrl(url);
        signers[msg.sender].url = url;
        emit SignerUrlUpdated(msg.sender, url);
    }

    /// @notice Leave the quorum from the next epoch; the stake unlocks `exitDelayEpochs` later.
    function exit() external {
        Signer storage s = signers[msg.sender];
        if (s.pubkey.length == 0) revert NotRegistered(msg.sender);
        if (s.activeUntil != type(uint64).max) revert AlreadyExited(msg.sender);
        uint64 until = currentEpoch() + 1;
        s.activeUntil = until < s.activeFrom ? s.activeFrom : until;
        Checkpoint memory next = _nextCheckpoint();
        _writeNextCheckpoint(next.count - 1, next.totalStake - s.stake);
        emit SignerExited(msg.sender, s.activeUntil);
    }

    function withdrawStake() external {
        Signer storage s = signers[msg.sender];
        if (s.pubkey.length == 0) revert NotRegistered(msg.sender);
        if (s.activeUntil == type(uint64).max || s.withdrawn) revert StakeLocked(type(uint64).max);
        uint64 unlock = s.activeUntil + uint64(exitDelayEpochs);
        if (currentEpoch() < unlock) revert StakeLocked(unlock);
        s.withdrawn = true;
        uint256 amount = s.stake;
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
        emit StakeWithdrawn(msg.sender, amount);
    }

    function _checkUrl(string calldata url) private pure {
        if (bytes(url).length == 0 || bytes(url).length > MAX_URL_BYTES) revert InvalidUrl();
    }

    // Membership changes only ever touch epoch currentEpoch() + 1, the last checkpoint or a new one.
    function _nextCheckpoint() private view returns (Checkpoint memory) {
        uint256 n = checkpoints.length;
        if (n == 0) return Checkpoint(currentEpoch() + 1, 0, 0);
        Checkpoint memory last = checkpoints[n - 1];
        last.epoch = currentEpoch() + 1;
        return last;
    }

    function _writeNextCheckpoint(uint64 count, uint256 total) private {
        uint64 epoch = currentEpoch() + 1;
        uint256 n = checkpoints.length;
        if (n > 0 && checkpoints[n - 1].epoch == epoch) {
            checkpoints[n - 1].count = count;
            checkpoints[n - 1].totalStake = total;
        } else {
            checkpoints.push(Checkpoint(epoch, count, total));
        }
    }

    // --- reading ----------------------------------------------------------------------

    /// @notice Total stake and number of signers in `epoch`'s quorum.
    function quorumStake(uint64 epoch) public view returns (uint256 totalStake, uint256 count) {
        uint256 lo = 0;
        uint256 hi = checkpoints.length;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (checkpoints[mid].epoch <= epoch) lo = mid + 1;
            else hi = mid;
        }
        if (lo == 0) return (0, 0);
        Checkpoint storage c = checkpoints[lo - 1];
        return (c.totalStake, c.count);
    }

    function isActive(address signer, uint64 epoch) public view returns (bool) {
        Signer storage s = signers[signer];
        return s.pubkey.length != 0 && s.activeFrom <= epoch && epoch < s.activeUntil;
    }

    function getSigner(address signer)
        external
        view
        returns (bytes memory pubkeyCompressed, string memory url, uint256 stake, uint64 activeFrom, uint64 activeUntil)
    {
        Signer storage s = signers[signer];
        if (s.pubkey.length == 0) revert NotRegistered(signer);
        return (s.pubkeyCompressed, s.url, s.stake, s.activeFrom, s.activeUntil);
    }

    function signerCount() external view returns (uint256) {
        return signerList.length;
    }

    function epochSeed(uint64 epoch) public view returns (bytes32) {
        return keccak256(abi.encode(address(this), epoch));
    }

    /// @notice One page of `epoch`'s quorum: the members among registered signers
    /// [offset, offset + limit) (registration order), their stakes and URLs, and `next`, the offset
    /// of the following page (`signerCount()` after the last). `limit` is capped at MAX_PAGE, so a
    /// page costs the same however many signers ever registered (the list only grows). A reader
    /// pages until `next == signerCount()`, then deals the 128 columns with
    /// `assignColumns(stakes, epochSeed(epoch))` (at most MAX_ACTIVE_SIGNERS stakes).
    function getQuorumPage(uint64 epoch, uint256 offset, uint256 limit)
        external
        view
        returns (address[] memory members, uint256[] memory stakes, string[] memory urls, uint256 next)
    {
        uint256 end = signerList.length;
        if (limit > MAX_PAGE) limit = MAX_PAGE;
        if (offset > end) offset = end;
        if (end - offset > limit) end = offset + limit;
        uint256 n = 0;
        for (uint256 i = offset; i < end; i++) {
            if (isActive(signerList[i], epoch)) n++;
        }
        members = new address[](n);
        stakes = new uint256[](n);
        urls = new string[](n);
        uint256 k = 0;
        for (uint256 i = offset; i < end; i++) {
            address a = signerList[i];
            if (isActive(a, epoch)) {
                members[k] = a;
                stakes[k] = signers[a].stake;
                urls[k] = signers[a].url;
                k++;
            }
        }
        next = end;
    }

    /// @notice Deal COLUMNS columns in proportion to `stakes` (largest remainder, ties to the lower
    /// index), then shuffle them (Fisher-Yates, j = keccak256(seed, i) mod (i + 1) for i = 127..1).
    function assignColumns(uint256[] memory stakes, bytes32 seed) public pure returns (uint8[] memory owners) {
        owners = new uint8[](COLUMNS);
        uint256 n = stakes.length;
        if (n == 0) return owners;
        uint256 total = 0;
        for (uint256 i = 0; i < n; i++) total += stakes[i];
        uint256[] memory quota = new uint256[](n);
        uint256[] memory rem = new uint256[](n);
        uint256 dealt = 0;
        for (uint256 i = 0; i < n; i++) {
            quota[i] = (COLUMNS * stakes[i]) / total;
            rem[i] = (COLUMNS * stakes[i]) % total;
            dealt += quota[i];
        }
        bool[] memory bumped = new bool[](n);
        for (; dealt < COLUMNS; dealt++) {
            uint256 best = type(uint256).max;
            for (uint256 i = 0; i < n; i++) {
                if (!bumped[i] && (best == type(uint256).max || rem[i] > rem[best])) best = i;
            }
            bumped[best] = true;
            quota[best] += 1;
        }
        uint8[] memory slots = new uint8[](COLUMNS);
        uint256 slot = 0;
        for (uint256 i = 0; i < n; i++) {
            for (uint256 q = 0; q < quota[i]; q++) slots[slot++] = uint8(i);
        }
        uint8[] memory perm = new uint8[](COLUMNS);
        for (uint256 i = 0; i < COLUMNS; i++) perm[i] = uint8(i);
        for (uint256 i = COLUMNS - 1; i > 0; i--) {
            uint256 j = uint256(keccak256(abi.encode(seed, i))) % (i + 1);
            (perm[i], perm[j]) = (perm[j], perm[i]);
        }
        for (uint256 k = 0; k < COLUMNS; k++) owners[perm[k]] = slots[k];
    }

    /// @notice Sum of the G1 public keys of `members` (strictly ascending addresses, each in
    /// `epoch`'s quorum), their total stake and each one's stake. Reverts on a duplicate or a
    /// non-member.
    function aggregate(address[] calldata members, uint64 epoch)
        external
        view
        returns (bytes memory aggregatePubkey, uint256 signedStake, uint256[] memory stakes)
    {
        stakes = new uint256[](members.length);
        address previous = address(0);
        for (uint256 i = 0; i < members.length; i++) {
            address a = members[i];
            if (a <= previous) revert NotSortedOrDuplicate(a);
            if (!isActive(a, epoch)) revert NotInQuorum(a, epoch);
            previous = a;
            Signer storage s = signers[a];
            aggregatePubkey = i == 0 ? s.pubkey : BLS12381.g1Add(aggregatePubkey, s.pubkey);
            signedStake += s.stake;
            stakes[i] = s.stake;
        }
    }

    /// @notice Expose hash_to_curve for cross-checks against other implementations.
    function hashToG2(bytes calldata message, bytes calldata dst) external view returns (bytes memory) {
        return BLS12381.hashToG2(message, dst);
    }
}
