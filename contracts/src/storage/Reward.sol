// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Reward: storage fees pooled per 8 GiB pricing chunk and released linearly.
/// @notice As 0G's ChunkLinearReward (storage.md §2.3): the market credits each fee to the
/// pricing chunks (2^25 sectors each) that the paid sectors cover, pro rata. A chunk starts
/// releasing when the flow fills it; its pool is released linearly over `releaseSeconds`.
/// Miners claim released rewards through the mining contract (a later issue), which is why
/// only `releasedReward` is exposed here.
contract Reward {
    uint256 public constant SECTORS_PER_PRICING_CHUNK = 1 << 25;

    struct Pool {
        uint128 lockedReward;
        uint128 claimableReward;
        uint128 distributedReward;
        uint40 startTime; // 0 until the flow has filled the chunk
        uint40 lastUpdate;
    }

    address public immutable deployer;
    uint256 public immutable releaseSeconds;
    address public market;
    mapping(uint256 => Pool) public rewards;

    event RewardFilled(uint256 indexed pricingIndex, uint256 amount, bool chunkFull);

    error OnlyMarket(address caller);
    error AlreadyWired();
    error ChunkAlreadyFull(uint256 pricingIndex);

    constructor(uint256 releaseSeconds_) {
        deployer = msg.sender;
        releaseSeconds = releaseSeconds_;
    }

    /// @notice One-time wiring by the deployer.
    function setMarket(address market_) external {
        if (msg.sender != deployer || market != address(0)) revert AlreadyWired();
        market = market_;
    }

    /// @notice Credit `msg.value` to the chunks covering sectors [beforeLength, beforeLength+sectors).
    function fillReward(uint256 beforeLength, uint256 sectors) external payable {
        if (msg.sender != market) revert OnlyMarket(msg.sender);
        if (sectors == 0) return;
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
            if (pool.startTime != 0) revert ChunkAlreadyFull(index);
            pool.lockedReward += uint128(amount);
            bool full = stop == chunkEnd;
            if (full) {
                pool.startTime = uint40(block.timestamp);
                pool.lastUpdate = uint40(block.timestamp);
            }
            emit RewardFilled(index, amount, full);
            position = stop;
        }
    }

    /// @notice Reward of chunk `index` released so far and not yet claimable or distributed.
    function releasedReward(uint256 index) public view returns (uint256) {
        Pool memory pool = rewards[index];
        if (pool.startTime == 0) return 0;
        uint256 total = uint256(pool.lockedReward) + pool.claimableReward + pool.distributedReward;
        uint256 elapsed = block.timestamp - pool.startTime;
        uint256 expected = elapsed >= releaseSeconds ? total : total * elapsed / releaseSeconds;
        uint256 already = uint256(pool.claimableReward) + pool.distributedReward;
        return expected > already ? expected - already : 0;
    }
}
