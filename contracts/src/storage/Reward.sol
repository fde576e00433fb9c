// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Reward: storage fees pooled per 8 GiB pricing chunk, released linearly, paid to miners.
/// @notice As 0G's ChunkLinearReward (storage.md §2.3): the market credits each fee to the
/// pricing chunks (2^25 sectors each) that the paid sectors cover, pro rata; the mining contract
/// pays a miner half of a chunk's released-but-unpaid reward per accepted answer.
/// Deliberate change: 0G starts releasing a chunk only once the flow has filled all 8 GiB of
/// it, so on a small network fees never reach miners. Here a pool releases from its first fill:
/// every fill re-spreads the pool's still-locked reward plus the new fee linearly over
/// `releaseSeconds` from that moment. Nothing is released twice and nothing before it is paid
/// in, so the total paid out never exceeds the fees deposited.
/// Payouts go straight to the beneficiary; if that transfer fails (a contract refusing
/// payments) the amount is kept for it and `withdraw` sends it later.
contract Reward {
    uint256 public constant SECTORS_PER_PRICING_CHUNK = 1 << 25;
    uint256 public constant PAYOUT_GAS = 50_000; // a failing beneficiary cannot block mining
    uint256 public constant CLAIM_DIVISOR = 2; // a miner gets half the claimable reward per hit

    struct Pool {
        uint128 totalReward; // all fees credited to the chunk
        uint128 releasedAtStart; // released before the current schedule started
        uint128 distributedReward; // paid to miners
        uint40 startTime; // start of the current linear schedule (0: never filled)
    }

    address public immutable deployer;
    uint256 public immutable releaseSeconds;
    address public market;
    address public mine;
    mapping(uint256 => Pool) public rewards;
    mapping(address => uint256) public claimedBy; // paid to each beneficiary, all chunks
    mapping(address => uint256) public owed; // payouts whose transfer failed, for `withdraw`
    uint256 public totalDeposited;
    uint256 public totalDistributed;

    event RewardFilled(uint256 indexed pricingIndex, uint256 amount);
    event DistributeReward(
        uint256 indexed pricingIndex, address indexed beneficiary, bytes32 indexed minerId, uint256 amount
    );

    error OnlyMarket(address caller);
    error OnlyMine(address caller);
    error AlreadyWired();
    error NothingOwed(address beneficiary);
    error WithdrawFailed(address beneficiary);

    constructor(uint256 releaseSeconds_) {
        deployer = msg.sender;
        releaseSeconds = releaseSeconds_;
    }

    /// @notice One-time wiring by the deployer.
    function setMarket(address market_) external {
        if (msg.sender != deployer || market != address(0)) revert AlreadyWired();
        market = market_;
    }

    /// @notice One-time wiring by the deployer: the contract allowed to pay mining rewards.
    function setMine(address mine_) external {
        if (msg.sender != deployer || mine != address(0)) revert AlreadyWired();
        mine = mine_;
    }

    /// @notice Credit `msg.value` to the chunks covering sectors [beforeLength, beforeLength+sectors).
    function fillReward(uint256 beforeLength, uint256 sectors) external payable {
        if (msg.sender != market) revert OnlyMarket(msg.sender);
        if (sectors == 0) return;
        totalDeposited += msg.value;
        uint256 position = beforeLength;
        uint256 end = beforeLength + sectors;
        uint256 remaining = msg.value;
        while (position < end) {
            uint256 index = position / SECTORS_PER_PRICING_CHUNK;
            uint256 chunkEnd = (index + 1) * SECTORS_PER_PRICING_CHUNK;
            uint256 stop = end < chunkEnd ? end : chunkEnd;
            uint256 amount = stop == end ? remaining : msg.value * (stop - position) / sectors;
            remaining -= amount;
            Pool storage pool = rewards[index];
            pool.releasedAtStart = uint128(releasedReward(index));
            pool.totalReward += uint128(amount);
            pool.startTime = uint40(block.timestamp);
            emit RewardFilled(index, amount);
            position = stop;
        }
    }

    /// @notice Reward of chunk `index` released so far (paid or not).
    function releasedReward(uint256 index) public view returns (uint256) {
        Pool memory pool = rewards[index];
        if (pool.startTime == 0) return 0;
        uint256 scheduled = uint256(pool.totalReward) - pool.releasedAtStart;
        uint256 elapsed = block.timestamp - pool.startTime;
        uint256 released = elapsed >= releaseSeconds ? scheduled : scheduled * elapsed / releaseSeconds;
        return pool.releasedAtStart + released;
    }

    /// @notice Released reward of chunk `index` not yet paid to a miner.
    function claimableReward(uint256 index) public view returns (uint256) {
        return releasedReward(index) - rewards[index].distributedReward;
    }

    /// @notice Pay `beneficiary` half of chunk `pricingIndex`'s claimable reward (only the mine).
    function claimMineReward(uint256 pricingIndex, address payable beneficiary, bytes32 minerId)
        external
        returns (uint256 amount)
    {
        if (msg.sender != mine) revert OnlyMine(msg.sender);
        amount = claimableReward(pricingIndex) / CLAIM_DIVISOR;
        if (amount == 0) return 0;
        rewards[pricingIndex].distributedReward += uint128(amount);
        totalDistributed += amount;
        claimedBy[beneficiary] += amount;
        emit DistributeReward(pricingIndex, beneficiary, minerId, amount);
        (bool ok,) = beneficiary.call{value: amount, gas: PAYOUT_GAS}("");
        if (!ok) owed[beneficiary] += amount;
    }

    /// @notice Send the caller the payouts whose direct transfer failed.
    function withdraw() external {
        uint256 amount = owed[msg.sender];
        if (amount == 0) revert NothingOwed(msg.sender);
        owed[msg.sender] = 0;
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert WithdrawFailed(msg.sender);
    }
}
