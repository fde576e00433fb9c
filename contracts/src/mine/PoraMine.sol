// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {PoraLib} from "./PoraLib.sol";
import {FlowMerkle} from "../storage/FlowMerkle.sol";
import {Flow, MineContext, EpochRange} from "../storage/Flow.sol";
import {Reward} from "../storage/Reward.sol";

/// @title PoraMine: accepts proof-of-random-access answers and pays miners from the fee pools.
/// @notice 0G's PoraMine (storage.md §2.4, §3) with these changes:
/// * a miner id is `keccak256(abi.encode(sender))`: registration cannot fail or race, and a
///   node knows its id without reading a receipt (0G's "Fail to find minerId" startup failures);
/// * at most one reward per miner per epoch (besides 0G's cap of 2 x target answers per epoch);
/// * answers on an all-zero seal (flow padding or gaps) are refused: such a seal can be
///   recomputed without storing anything;
/// * epochs that passed without any answer ease the difficulty (0G only adjusts after an
///   epoch with answers, so a too-hard target never recovers);
/// * one subtask per epoch (0G's nSubtasks = 1): the subtask digest is
///   keccak(abi.encode(context.digest, blockhash(context.mineStart))).
/// Every rejection is a custom error naming what is wrong.
contract PoraMine {
    struct PoraAnswer {
        bytes32 contextDigest;
        bytes32 nonce;
        bytes32 minerId;
        PoraLib.RecallRange range;
        uint256 recallPosition;
        uint256 sealOffset;
        bytes32 sealedContextDigest;
        bytes32[128] sealedData;
        bytes32[] merkleProof;
    }

    struct WorkerContext {
        MineContext context;
        bytes32 subtaskDigest;
        uint256 poraTarget;
        uint256 maxShards;
        bool canSubmit; // registered, not yet rewarded this epoch, epoch not full, mineable
    }

    uint256 public constant PORA_VERSION = 1;
    uint256 public constant MAX_SHARDS = 32;
    uint256 public constant ADJUST_RATIO = 20; // move 1/20 of the way to the target per epoch
    uint256 public constant MAX_EMPTY_EPOCH_STEPS = 8; // easing steps applied at most per update
    uint256 public constant MAX_TARGET_SUBMISSIONS = 1000;
    uint256 public constant SEALS_PER_LOAD = 64;
    uint256 private constant SCALE_BITS = 16;
    bytes32 public constant EMPTY_HASH = keccak256("");

    Flow public immutable flow;
    Reward public immutable reward;
    address public immutable admin;

    uint256 public poraTarget;
    uint256 public targetSubmissions;
    uint256 public minDifficulty;
    uint256 public currentEpoch; // the epoch `currentSubmissions` counts
    uint256 public currentSubmissions;
    uint256 public totalSubmissions;
    mapping(bytes32 => address) public beneficiaries;
    mapping(bytes32 => uint256) public lastRewardedEpoch;

    event MinerRegistered(bytes32 indexed minerId, address indexed owner, address indexed beneficiary);
    event NewSubmission(uint256 indexed epoch, bytes32 indexed minerId, uint256 recallPosition, uint256 reward);
    event DifficultyAdjusted(uint256 indexed epoch, uint256 poraTarget);

    error OnlyAdmin(address caller);
    error BadParameter(string reason);
    error UnknownMiner(bytes32 minerId);
    error StaleContext(bytes32 answered, bytes32 current);
    error AlreadyRewarded(bytes32 minerId, uint256 epoch);
    error EpochFull(uint256 epoch, uint256 submissions);
    error TooManyShards(uint256 shards, uint256 maxShards);
    error DataOutOfRange(uint256 recallPosition, uint256 rangeStart, uint256 rangeEnd);
    error WrongRecallPosition(uint256 answered, uint256 expected);
    error WrongProof(bytes32 recovered, bytes32 flowRoot);
    error ZeroData(uint256 recallPosition);
    error MissedTarget(bytes32 poraHash, uint256 threshold);

    constructor(address flow_, address reward_, uint256 difficulty, uint256 targetSubmissions_, uint256 minDifficulty_) {
        flow = Flow(flow_);
        reward = Reward(reward_);
        admin = msg.sender;
        _setDifficulty(difficulty);
        _setTargetSubmissions(targetSubmissions_);
        minDifficulty = minDifficulty_;
    }

    // --- miners ----------------------------------------------------------------------------

    function minerIdOf(address owner) public pure returns (bytes32) {
        return keccak256(abi.encode(owner));
    }

    /// @notice Register the sender's miner id (or change its beneficiary); idempotent.
    function register(address beneficiary) external returns (bytes32 minerId) {
        if (beneficiary == address(0)) revert BadParameter("beneficiary is the zero address");
        minerId = minerIdOf(msg.sender);
        beneficiaries[minerId] = beneficiary;
        emit MinerRegistered(minerId, msg.sender, beneficiary);
    }

    // --- admin -----------------------------------------------------------------------------

    modifier onlyAdmin() {
        if (msg.sender != admin) revert OnlyAdmin(msg.sender);
        _;
    }

    function setDifficulty(uint256 difficulty) external onlyAdmin {
        _setDifficulty(difficulty);
    }

    function setTargetSubmissions(uint256 n) external onlyAdmin {
        _setTargetSubmissions(n);
    }

    function setMinDifficulty(uint256 d) external onlyAdmin {
        minDifficulty = d;
    }

    function _setDifficulty(uint256 difficulty) internal {
        if (difficulty == 0) revert BadParameter("difficulty is zero");
        poraTarget = type(uint256).max / difficulty;
    }

    function _setTargetSubmissions(uint256 n) internal {
        if (n == 0 || n > MAX_TARGET_SUBMISSIONS) revert BadParameter("target submissions out of 1..1000");
        targetSubmissions = n;
    }

    // --- epochs and difficulty -------------------------------------------------------------

    /// @notice pora.py compute_adjusted_target: a 1/ADJUST_RATIO step toward the target rate,
    /// at most a factor 2 either way, never easier than `minDifficulty` allows.
    function _adjust(uint256 target, uint256 submissions) internal view returns (uint256) {
        uint256 scaled = target >> SCALE_BITS;
        uint256 ceiling = type(uint256).max >> SCALE_BITS;
        uint256 expected = submissions == 0 ? ceiling : scaled * targetSubmissions / submissions;
        if (expected > ceiling) expected = ceiling;
        uint256 adjusted = (scaled * (ADJUST_RATIO - 1) + expected) / ADJUST_RATIO;
        uint256 upper = scaled * 2 < ceiling ? scaled * 2 : ceiling;
        if (adjusted > upper) adjusted = upper;
        if (adjusted < scaled / 2) adjusted = scaled / 2;
        uint256 limit = minDifficulty > 0 ? type(uint256).max / minDifficulty : type(uint256).max;
        uint256 next = adjusted << SCALE_BITS;
        return next < limit ? next : limit;
    }

    function _syncEpoch(uint256 epoch) internal {
        if (epoch == currentEpoch) return;
        if (currentEpoch > 0 && epoch > currentEpoch) {
            uint256 target = _adjust(poraTarget, currentSubmissions);
            uint256 empty = epoch - currentEpoch - 1;
            if (empty > MAX_EMPTY_EPOCH_STEPS) empty = MAX_EMPTY_EPOCH_STEPS;
            for (uint256 i = 0; i < empty; i++) target = _adjust(target, 0);
            poraTarget = target;
            emit DifficultyAdjusted(epoch, target);
        }
        currentEpoch = epoch;
        currentSubmissions = 0;
    }

    function _subtaskDigest(MineContext memory context) internal pure returns (bytes32) {
        return keccak256(abi.encode(context.digest, context.blockDigest));
    }

    /// @notice What a miner needs for the current epoch. It opens a due epoch in the Flow,
    /// so miners call it with eth_call (nothing is written).
    function computeWorkerContext(bytes32 minerId) external returns (WorkerContext memory w) {
        MineContext memory context = flow.makeContextWithResult();
        _syncEpoch(context.epoch);
        w.context = context;
        w.subtaskDigest = _subtaskDigest(context);
        w.poraTarget = poraTarget;
        w.maxShards = MAX_SHARDS;
        w.canSubmit = beneficiaries[minerId] != address(0) && lastRewardedEpoch[minerId] != context.epoch
            && currentSubmissions < 2 * targetSubmissions && context.digest != EMPTY_HASH;
    }

    // --- answers ---------------------------------------------------------------------------

    /// @notice Check an answer and pay the miner's beneficiary from the recalled chunk's pool.
    function submit(PoraAnswer calldata answer) external returns (uint256 paid) {
        bytes32 minerId = answer.minerId;
        address beneficiary = beneficiaries[minerId];
        if (beneficiary == address(0)) revert UnknownMiner(minerId);
        MineContext memory context = flow.makeContextWithResult();
        _syncEpoch(context.epoch);
        if (context.digest == EMPTY_HASH || answer.contextDigest != context.digest) {
            revert StaleContext(answer.contextDigest, context.digest);
        }
        if (lastRewardedEpoch[minerId] == context.epoch) revert AlreadyRewarded(minerId, context.epoch);
        if (currentSubmissions >= 2 * targetSubmissions) revert EpochFull(context.epoch, currentSubmissions);
        PoraLib.RecallRange memory range = answer.range;
        _checkRange(answer, range, context);
        _checkData(answer, context);
        _checkWork(answer, range, context);
        lastRewardedEpoch[minerId] = context.epoch;
        currentSubmissions += 1;
        totalSubmissions += 1;
        paid = reward.claimMineReward(
            answer.recallPosition / PoraLib.SECTORS_PER_PRICING, payable(beneficiary), minerId
        );
        emit NewSubmission(context.epoch, minerId, answer.recallPosition, paid);
    }

    /// @dev The recall range is a valid maximal range of the minable flow, and the recalled
    /// seal lies in the epoch whose context sealed it.
    function _checkRange(PoraAnswer calldata answer, PoraLib.RecallRange memory range, MineContext memory context)
        internal
        view
    {
        uint256 minable = context.flowLength / PoraLib.SECTORS_PER_LOAD * PoraLib.SECTORS_PER_LOAD;
        PoraLib.check(range, minable);
        uint256 shards = PoraLib.numShards(range);
        if (shards > MAX_SHARDS) revert TooManyShards(shards, MAX_SHARDS);
        uint256 sealEnd = answer.recallPosition + PoraLib.SECTORS_PER_SEAL;
        EpochRange memory epochRange = flow.getEpochRange(answer.sealedContextDigest);
        if (answer.sealedContextDigest == EMPTY_HASH || sealEnd <= epochRange.start || sealEnd > epochRange.end
            || sealEnd > minable) {
            revert DataOutOfRange(answer.recallPosition, epochRange.start, epochRange.end);
        }
    }

    /// @dev Unsealed, the seal is flow data under the context's root (and not all zeros).
    function _checkData(PoraAnswer calldata answer, MineContext memory context) internal pure {
        bytes32[128] memory data =
            PoraLib.unseal(answer.sealedData, answer.minerId, answer.sealedContextDigest, answer.recallPosition);
        bool nonZero = false;
        for (uint256 w = 0; w < PoraLib.WORDS_PER_SEAL; w++) {
            if (data[w] != bytes32(0)) {
                nonZero = true;
                break;
            }
        }
        if (!nonZero) revert ZeroData(answer.recallPosition);
        bytes32 root = bytes32(0);
        if (answer.merkleProof.length + PoraLib.SEAL_TREE_HEIGHT == FlowMerkle.depth(context.flowLength)) {
            root = PoraLib.recoverMerkleRoot(data, answer.recallPosition, answer.merkleProof);
        }
        if (root != context.flowRoot) revert WrongProof(root, context.flowRoot);
    }

    /// @dev The answer's seal is the one its scratchpad recalls, and its hash meets the target.
    function _checkWork(PoraAnswer calldata answer, PoraLib.RecallRange memory range, MineContext memory context)
        internal
        view
    {
        if (answer.sealOffset >= SEALS_PER_LOAD) revert WrongRecallPosition(answer.recallPosition, type(uint256).max);
        bytes memory seed = PoraLib.padSeed(answer.minerId, answer.nonce, _subtaskDigest(context), range);
        (bytes32[128] memory pad, bytes32 recallSeed) = PoraLib.scratchpadBlock(seed, answer.sealOffset);
        uint256 expected = PoraLib.recallPosition(range, recallSeed) + answer.sealOffset * PoraLib.SECTORS_PER_SEAL;
        if (expected != answer.recallPosition) revert WrongRecallPosition(answer.recallPosition, expected);
        bytes32 h = PoraLib.poraHash(answer.sealOffset, seed, pad, answer.sealedData);
        uint256 threshold = (poraTarget / PoraLib.targetScaleX64(range, context.flowLength)) << 64;
        if (uint256(h) > threshold) revert MissedTarget(h, threshold);
    }
}
